"""Question sets: docx (generated and the two real samples), JSONL, JSON, TXT, CSV; selection.

pytest -q tests/test_questions.py
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from qaserve.paths import REPO_ROOT
from qaserve.questions import (
    QA,
    load_questions,
    main,
    parse_paragraphs,
    read_docx,
    select,
    strip_question_suffix,
)

SAMPLES = Path(os.environ.get("QASERVE_SAMPLE_DATA", REPO_ROOT.parent / "shared" / "data"))
HEADING_LINE = re.compile(
    r"^\s*(第\s*[0-9一二三四五六七八九十百]+\s*章|[一二三四五六七八九十]、)", re.M
)


def write_docx(path: Path, paragraphs: list[str]) -> Path:
    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    document.save(str(path))
    return path


GENERATED = [
    "",
    "一、容易题（2道）",
    "问题：什么是warp？",
    " 答案：warp是32个线程组成的调度单位。",
    "问题：共享内存如何声明？",
    "答案：用__shared__修饰，例如：",
    "__global__ void k(float* x) {",
    "    __shared__ float tile[32];",
    "    tile[threadIdx.x] = x[threadIdx.x];",
    "}",
    "这样同一线程块内的线程共享该数组。",
    "第3章 可扩展并行执行",
    "二、适中题（1道）",
    "1. 问题：什么是",
    "屏障同步？",
    "答案：__syncthreads()让块内线程在同一点等待。",
    "三、难题（1道）",
]


def test_generated_docx(tmp_path: Path) -> None:
    qas = load_questions(write_docx(tmp_path / "set.docx", GENERATED))
    assert [qa.question for qa in qas] == [
        "什么是warp？",
        "共享内存如何声明？",
        "什么是\n屏障同步？",
    ]
    assert qas[0].answer == "warp是32个线程组成的调度单位。"
    assert qas[1].answer == (
        "用__shared__修饰，例如：\n__global__ void k(float* x) {\n    __shared__ float tile[32];\n"
        "    tile[threadIdx.x] = x[threadIdx.x];\n}\n这样同一线程块内的线程共享该数组。"
    )
    assert qas[2].answer == "__syncthreads()让块内线程在同一点等待。"
    assert all(qa.source == str(tmp_path / "set.docx") for qa in qas)
    assert read_docx(tmp_path / "set.docx") == [QA(qa.question, qa.answer) for qa in qas]


def test_headings_never_glued_into_answers() -> None:
    qas = parse_paragraphs(
        ["问题：Q1", "答案：A1", "第4章 内存", "二、适中题", "问题：Q2", "答案：A2"]
    )
    assert qas == [QA("Q1", "A1"), QA("Q2", "A2")]


def test_question_without_answer_keeps_empty_answer() -> None:
    assert parse_paragraphs(["问题：Q1", "问题：Q2", "答案：A2"]) == [QA("Q1", ""), QA("Q2", "A2")]


def _samples() -> Path:
    # someone else's data beside the checkout, never committed: a clone elsewhere may lack it
    if not (SAMPLES / "basic.docx").exists():
        pytest.skip(f"sample docx files not found under {SAMPLES}")
    return SAMPLES


@pytest.mark.parametrize("name,count", [("basic.docx", 100), ("plus.docx", 92)])
def test_real_sample_files(name: str, count: int) -> None:
    qas = load_questions(_samples() / name)
    assert len(qas) == count
    assert all(qa.question and qa.answer for qa in qas)
    for qa in qas:
        assert not HEADING_LINE.search(qa.answer), qa.question
        assert "问题：" not in qa.answer and "答案：" not in qa.answer, qa.question
        assert "问题：" not in qa.question


def test_real_plus_sample_keeps_code_indentation() -> None:
    qas = load_questions(_samples() / "plus.docx")
    multi = [qa for qa in qas if "\n" in qa.answer]
    assert len(multi) >= 10
    assert any("\n    int " in qa.answer for qa in multi)


CHAT = {
    "messages": [
        {"role": "system", "content": "你是助手"},
        {"role": "user", "content": "旧问题"},
        {"role": "assistant", "content": "旧答案"},
        {"role": "user", "content": " 什么是warp？ "},
        {"role": "assistant", "content": "32个线程。"},
    ]
}


def test_jsonl_chat_and_qa_rows(tmp_path: Path) -> None:
    rows = [
        CHAT,
        {"question": "Q2", "answer": "A2"},
        {"q": "Q3", "a": "A3"},
        {"prompt": "Q4", "response": "A4"},
        {"messages": [{"role": "user", "content": "Q5"}]},
    ]
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n")
    qas = load_questions(path)
    assert [(qa.question, qa.answer) for qa in qas] == [
        ("什么是warp？", "32个线程。"),
        ("Q2", "A2"),
        ("Q3", "A3"),
        ("Q4", "A4"),
        ("Q5", ""),
    ]


def test_jsonl_bad_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "Q"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        load_questions(path)


def test_json_list_of_objects_or_strings(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps([{"question": "Q", "answer": "A"}, CHAT]))
    (tmp_path / "b.json").write_text(json.dumps(["Q1", "Q2"]))
    (tmp_path / "c.json").write_text(json.dumps({"questions": ["Q1"]}))
    assert [qa.answer for qa in load_questions(tmp_path / "a.json")] == ["A", "32个线程。"]
    assert load_questions(tmp_path / "b.json") == [
        QA("Q1", "", str(tmp_path / "b.json")),
        QA("Q2", "", str(tmp_path / "b.json")),
    ]
    assert [qa.question for qa in load_questions(tmp_path / "c.json")] == ["Q1"]


TXT = """（1. 问题：什么是warp？ 答案：warp是32个线程。）
（2. 问题：共享内存（shared memory）是什么？ 答案：块内共享的片上存储（低延迟）。
它比全局内存快。）

3. 问题：Q3
答案：第一行
    缩进的代码
问题：Q4 答案：A4
（5. 问题：Q5（x）？）答案：A5（y）
"""


def test_txt_format(tmp_path: Path) -> None:
    path = tmp_path / "set.txt"
    path.write_text(TXT, encoding="utf-8")
    assert [(qa.question, qa.answer) for qa in load_questions(path)] == [
        ("什么是warp？", "warp是32个线程。"),
        ("共享内存（shared memory）是什么？", "块内共享的片上存储（低延迟）。\n它比全局内存快。"),
        ("Q3", "第一行\n    缩进的代码"),
        ("Q4", "A4"),
        ("Q5（x）？", "A5（y）"),
    ]


def test_csv_english_and_chinese_headers(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text('id,Question,Answer\n1,Q1,"A1, with comma"\n2,Q2,\n')
    (tmp_path / "b.csv").write_text("\ufeff问题,答案\nQ1,A1\n", encoding="utf-8")
    assert [(qa.question, qa.answer) for qa in load_questions(tmp_path / "a.csv")] == [
        ("Q1", "A1, with comma"),
        ("Q2", ""),
    ]
    assert [(qa.question, qa.answer) for qa in load_questions(tmp_path / "b.csv")] == [("Q1", "A1")]
    (tmp_path / "c.csv").write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match="c.csv"):
        load_questions(tmp_path / "c.csv")


def test_format_sniffed_without_known_extension(tmp_path: Path) -> None:
    (tmp_path / "a.data").write_text('{"question": "Q1"}\n{"question": "Q2"}\n')
    (tmp_path / "b.data").write_text("问题：Q 答案：A\n", encoding="utf-8")
    write_docx(tmp_path / "c.data", ["问题：Q", "答案：A"])
    assert [qa.question for qa in load_questions(tmp_path / "a.data")] == ["Q1", "Q2"]
    assert [qa.answer for qa in load_questions(tmp_path / "b.data")] == ["A"]
    assert [qa.answer for qa in load_questions(tmp_path / "c.data")] == ["A"]


def test_unknown_format_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text("# just notes\n")
    with pytest.raises(ValueError, match="notes.md"):
        load_questions(path)


QAS = [QA(f"Q{i}", f"A{i}") for i in range(10)] + [QA(" q1 ", "dup"), QA("Q2？", "dup")]


def test_select_keeps_everything_by_default() -> None:
    assert select(QAS) == QAS


def test_select_dedupe_keeps_first() -> None:
    out = select(QAS, dedupe=True)
    assert len(out) == 10 and all(qa.answer != "dup" for qa in out)


def test_select_shuffle_is_seeded_then_max_n() -> None:
    a = select(QAS, shuffle=True, seed=1, max_n=5)
    assert a == select(QAS, shuffle=True, seed=1, max_n=5)
    assert a != select(QAS, shuffle=True, seed=2, max_n=5)
    assert len(a) == 5 and set(a) <= set(QAS)
    assert select(QAS, max_n=3) == QAS[:3]
    assert select(QAS, max_n=0) == []


@pytest.mark.parametrize(
    "question,expected",
    [
        ("什么是CUDA？请简要回答。", "什么是CUDA？"),
        ("什么是CUDA？（请简要回答）", "什么是CUDA？"),
        ("什么是CUDA?(请用一句话回答)", "什么是CUDA?"),
        ("什么是CUDA？请用一句话回答。", "什么是CUDA？"),
        ("什么是CUDA？ 请简要回答，不超过100字。", "什么是CUDA？"),
        ("什么是CUDA？请简要回答。（简答）", "什么是CUDA？"),
        # left alone: the instruction is the question, or it asks for more than an answer
        ("请回答什么是CUDA？", "请回答什么是CUDA？"),
        ("请简要回答", "请简要回答"),
        ("什么是CUDA？请说明其作用。", "什么是CUDA？请说明其作用。"),
        ("CUDA中的回答机制是什么？", "CUDA中的回答机制是什么？"),
    ],
)
def test_strip_question_suffix(question: str, expected: str) -> None:
    assert strip_question_suffix(question) == expected


def test_cli_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "set.txt"
    path.write_text(TXT, encoding="utf-8")
    main([str(path)])
    assert "5 questions, 5 with answers" in capsys.readouterr().out
