"""Question sets: the grader's docx, JSONL/JSON (chat or Q/A rows), `问题：/答案：` text, CSV.

python -m qaserve.questions ../shared/data/basic.docx data.jsonl    # how many pairs each holds
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from qaserve.paths import PROJECT_DATA

# "问题：…", "1. 问题：…", "（1. 问题：…", "(12、问题:…"
QUESTION_MARK = re.compile(r"^\s*(?:[（(]\s*)?(?:\d+\s*[.、．)）]\s*)?问题\s*[:：]\s*")
ANSWER_MARK = re.compile(r"^\s*答案\s*[:：]\s*")
INLINE_ANSWER = re.compile(r"\s*答案\s*[:：]\s*")
# section headings between pairs: "第2章 …", "一、容易题…", "Chapter 3"
HEADING = re.compile(
    r"^\s*(第[0-9一二三四五六七八九十百]+[章节部分]|[一二三四五六七八九十]+、|chapter\s+\d)", re.I
)
FALLBACK_WARMUP = (
    "什么是CUDA？",
    "请详细解释shared memory的tiling原理。",
    "请写出向量加法的CUDA kernel代码。",
)
QUESTION_KEYS = ("question", "q", "prompt", "instruction", "问题")
ANSWER_KEYS = ("answer", "a", "response", "output", "答案")


@dataclass(frozen=True)
class QA:
    question: str
    answer: str
    source: str = ""


def _unclosed(text: str) -> str:
    # drop one trailing bracket that closes nothing inside `text` (it closes the block)
    text = text.rstrip()
    extra = text.count("）") + text.count(")") > text.count("（") + text.count("(")
    return text[:-1].rstrip() if extra and text[-1:] in ("）", ")") else text


def _pair(question: str, answer: str, opened: bool) -> QA:
    """`（1. 问题：… 答案：…）`: the block's closing bracket ends the answer (or the question)."""
    if opened:
        closed_q = _unclosed(question)
        if closed_q != question.rstrip():
            return QA(closed_q, answer)
        return QA(question, _unclosed(answer))
    return QA(question, answer)


def parse_paragraphs(paragraphs: list[str]) -> list[QA]:
    """Pairs from paragraphs; answers may span several paragraphs, headings end them.

    Paragraphs between a question and its `答案：` continue the question; an answer on the
    question's own line (`问题：… 答案：…`) is split off. Code indentation is kept.
    """
    pairs: list[QA] = []
    question: list[str] | None = None
    answer: list[str] | None = None
    opened = False

    def flush() -> None:
        if question is not None:
            text = "\n".join(answer or []).strip()
            pairs.append(_pair("\n".join(question).strip(), text, opened))

    for text in paragraphs:
        mark = QUESTION_MARK.match(text)
        if mark:
            flush()
            opened = "（" in mark.group(0) or "(" in mark.group(0)
            rest = text[mark.end() :]
            inline = INLINE_ANSWER.search(rest)
            if inline:
                question, answer = [rest[: inline.start()].strip()], [rest[inline.end() :]]
            else:
                question, answer = [rest.strip()], None
        elif question is not None and answer is None and ANSWER_MARK.match(text):
            answer = [ANSWER_MARK.sub("", text, count=1)]
        elif HEADING.match(text):
            flush()
            question, answer = None, None
        elif text.strip() and answer is not None:
            answer.append(text.rstrip())
        elif text.strip() and question is not None:
            question.append(text.strip())
    flush()
    return pairs


def read_docx(path: Path) -> list[QA]:
    import docx

    return parse_paragraphs([p.text for p in docx.Document(str(path)).paragraphs])


def _pick(row: dict[str, Any], keys: Iterable[str]) -> str | None:
    lowered = {str(k).strip().lower(): v for k, v in row.items()}
    for key in keys:
        value = lowered.get(key)
        if value is not None:
            return str(value)
    return None


def _from_messages(messages: list[dict[str, Any]]) -> QA | None:
    """The last user turn and the assistant turn that follows it ("" when there is none)."""
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if not users:
        return None
    last = users[-1]
    replies = [m for m in messages[last + 1 :] if m.get("role") == "assistant"]
    answer = str(replies[0].get("content") or "") if replies else ""
    return QA(str(messages[last].get("content") or "").strip(), answer.strip())


def _from_obj(obj: Any, where: str) -> QA:
    if isinstance(obj, str):
        return QA(obj.strip(), "")
    if isinstance(obj, dict):
        if isinstance(obj.get("messages"), list):
            qa = _from_messages(obj["messages"])
            if qa is not None:
                return qa
        question = _pick(obj, QUESTION_KEYS)
        if question is not None:
            return QA(question.strip(), (_pick(obj, ANSWER_KEYS) or "").strip())
    raise ValueError(f"{where}: no question found (expected messages, question/answer, q/a)")


def jsonl_rows(text: str, name: str = "<jsonl>") -> list[tuple[str, Any]]:
    """(`name:line`, parsed value) of every non-blank line; ValueError names a bad line."""
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((f"{name}:{lineno}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{name}:{lineno}: not JSON ({exc.msg})") from exc
    return rows


def parse_jsonl(text: str, name: str = "<jsonl>") -> list[QA]:
    return [_from_obj(obj, where) for where, obj in jsonl_rows(text, name)]


def parse_json(text: str, name: str = "<json>") -> list[QA]:
    data = json.loads(text)
    if isinstance(data, dict):  # {"questions": [...]} / {"data": [...]}
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise ValueError(f"{name}: expected a list of questions")
        data = lists[0]
    if not isinstance(data, list):
        raise ValueError(f"{name}: expected a list of questions")
    return [_from_obj(obj, f"{name}[{i}]") for i, obj in enumerate(data)]


def parse_txt(text: str) -> list[QA]:
    """`（1. 问题：… 答案：…` blocks (also `1. 问题：`, `问题：`).

    Answers run over lines until the next question or heading; blank lines are skipped.
    """
    return parse_paragraphs(text.splitlines())


def parse_csv(text: str, name: str = "<csv>") -> list[QA]:
    reader = csv.DictReader(io.StringIO(text))
    header = [str(h).strip().lower() for h in reader.fieldnames or []]
    if not any(k in header for k in QUESTION_KEYS):
        raise ValueError(f"{name}: no question column in header {reader.fieldnames}")
    rows = [_from_obj(row, f"{name}:{i + 2}") for i, row in enumerate(reader)]
    return [qa for qa in rows if qa.question]


def parse_json_any(text: str, name: str = "<json>") -> list[QA]:
    """A JSON document (list, or one row object), else one JSON object per line."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return parse_jsonl(text, name)
    if isinstance(data, dict) and ("messages" in data or _pick(data, QUESTION_KEYS) is not None):
        return [_from_obj(data, name)]
    return parse_json(text, name)


def _sniff(text: str) -> str | None:
    if text.lstrip()[:1] in ("[", "{"):
        return "json"
    if any(QUESTION_MARK.match(line) for line in text.splitlines()):
        return "txt"
    first = text.splitlines()[0].lower() if text.strip() else ""
    if "," in first and any(k in first for k in QUESTION_KEYS):
        return "csv"
    return None


def load_questions(path: Path) -> list[QA]:
    """Questions (with reference answers where the file has them); format from extension/content."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext == ".docx" or (ext not in (".jsonl", ".json", ".txt", ".csv") and _is_zip(path)):
        pairs = read_docx(path)
    else:
        text = path.read_text(encoding="utf-8-sig")
        kind = ext[1:] if ext in (".jsonl", ".json", ".txt", ".csv") else _sniff(text)
        parsers = {
            "jsonl": lambda: parse_jsonl(text, str(path)),
            "json": lambda: parse_json_any(text, str(path)),
            "txt": lambda: parse_txt(text),
            "csv": lambda: parse_csv(text, str(path)),
        }
        if kind not in parsers:
            raise ValueError(f"{path}: unknown question-file format (docx, jsonl, json, txt, csv)")
        pairs = parsers[kind]()
    return [replace(qa, source=str(path)) for qa in pairs]


def _is_zip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


def normalize_question(q: str) -> str:
    """Key for de-duplication: whitespace removed, ASCII lower-cased, trailing ?/？ ignored."""
    return re.sub(r"\s+", "", q).lower().rstrip("?？")


def select(
    qas: list[QA],
    *,
    dedupe: bool = False,
    max_n: int | None = None,
    shuffle: bool = False,
    seed: int = 0,
) -> list[QA]:
    """Dedupe (first kept), then shuffle with `random.Random(seed)`, then keep the first max_n."""
    out = list(qas)
    if dedupe:
        seen: set[str] = set()
        kept = []
        for qa in out:
            key = normalize_question(qa.question)
            if key not in seen:
                seen.add(key)
                kept.append(qa)
        out = kept
    if shuffle:
        random.Random(seed).shuffle(out)
    if max_n is not None:
        out = out[: max(max_n, 0)]
    return out


_ANSWER_VERB = r"(?:回答|作答|答复|解答)"
# "（请简要回答）", "(简答)": a bracketed instruction at the very end
_BRACKETED = re.compile(
    rf"[（(]\s*(?:请[^（）()\n]{{0,16}}?{_ANSWER_VERB}[^（）()\n]{{0,8}}|简答)\s*[)）]\s*[。.]?\s*$"
)
# "请用一句话回答。", "请简要回答，不超过100字。": a sentence of its own at the end
_SENTENCE = re.compile(
    rf"(?<=[？?。.！!；;：:\s])\s*请[^。？?！!（）()\n]{{0,16}}?{_ANSWER_VERB}[^。？?！!（）()\n]{{0,12}}"
    r"[。.！!]?\s*$"
)


def strip_question_suffix(q: str) -> str:
    """Remove a trailing answer instruction (`（请简要回答）`, `请用一句话回答。`).

    Conservative: only an instruction asking *to answer* (回答/作答/答复/解答) at the very end,
    either in brackets or as its own sentence after the question's punctuation; a question that
    is nothing but such an instruction (`请回答什么是CUDA`) is returned unchanged.
    """
    text = q.rstrip()
    for _ in range(2):  # "…？请简要回答。（简答）"
        stripped = _BRACKETED.sub("", text).rstrip()
        stripped = _SENTENCE.sub("", stripped).rstrip()
        if stripped == text or not stripped:
            break
        text = stripped
    return text if text.strip() else q


def main(argv: list[str] | None = None) -> None:
    for arg in argv if argv is not None else sys.argv[1:]:
        found = load_questions(Path(arg))
        print(f"{arg}: {len(found)} questions, {sum(1 for qa in found if qa.answer)} with answers")


if __name__ == "__main__":
    main()


def warmup_questions(count: int = 12, path: Path = PROJECT_DATA) -> list[str]:
    """An even spread of the project's own questions (short, long and code ones alike), or
    the built-in few repeated when the data file is missing or unreadable."""
    try:
        questions = [qa.question for qa in load_questions(path)]
    except (OSError, ValueError):
        questions = []
    if not questions:
        return [FALLBACK_WARMUP[i % len(FALLBACK_WARMUP)] for i in range(count)]
    step = max(1, len(questions) // count)
    spread = questions[::step][:count]
    return [spread[i % len(spread)] for i in range(count)]  # a batch of `count`, always
