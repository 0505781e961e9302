"""Question sets: the grader's docx format (`问题：…` / `答案：…` paragraphs).

python -m qaserve.questions ../shared/data/basic.docx     # print how many pairs it holds
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

QUESTION_MARK = re.compile(r"^\s*(?:\d+[.、．]\s*)?问题\s*[:：]\s*")
ANSWER_MARK = re.compile(r"^\s*答案\s*[:：]\s*")
# section headings between pairs: "第2章 …", "一、容易题…", "Chapter 3"
HEADING = re.compile(
    r"^\s*(第[0-9一二三四五六七八九十百]+[章节部分]|[一二三四五六七八九十]+、|chapter\s+\d)", re.I
)


@dataclass(frozen=True)
class QA:
    question: str
    answer: str


def parse_paragraphs(paragraphs: list[str]) -> list[QA]:
    """Pairs from paragraphs; answers may span several paragraphs, headings end them."""
    pairs: list[QA] = []
    question: str | None = None
    answer: list[str] | None = None

    def flush() -> None:
        if question is not None:
            pairs.append(QA(question, "\n".join(answer or []).strip()))

    for text in paragraphs:
        if QUESTION_MARK.match(text):
            flush()
            question, answer = QUESTION_MARK.sub("", text, count=1).strip(), None
        elif ANSWER_MARK.match(text) and question is not None:
            answer = [ANSWER_MARK.sub("", text, count=1)]
        elif HEADING.match(text):
            flush()
            question, answer = None, None
        elif answer is not None and text.strip():
            answer.append(text)
    flush()
    return pairs


def read_docx(path: Path) -> list[QA]:
    import docx

    return parse_paragraphs([p.text for p in docx.Document(str(path)).paragraphs])


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        found = read_docx(Path(arg))
        print(f"{arg}: {len(found)} questions, {sum(1 for qa in found if qa.answer)} with answers")
