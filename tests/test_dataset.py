"""The project's Q&A data: data.jsonl (training) and data_heldout.jsonl (never trained on).

pytest tests/test_dataset.py -q
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from qaserve.modeltools.demo import load_pairs
from qaserve.paths import REPO_ROOT
from qaserve.questions import load_questions, warmup_questions

ROOT = REPO_ROOT
ASCII_TERM = re.compile(r"[A-Za-z0-9_]+")


def rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (ROOT / name).read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def train() -> list[dict]:
    return rows("data.jsonl")


@pytest.fixture(scope="module")
def heldout() -> list[dict]:
    return rows("data_heldout.jsonl")


def test_training_set_has_400_distinct_chat_pairs(train: list[dict]):
    questions = [r["messages"][0]["content"] for r in train]
    assert len(train) >= 400 and len(set(questions)) == len(questions)
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in train)
    assert len({r["id"] for r in train}) == len(train)


def test_answers_have_the_graders_shape(train: list[dict]):
    answers = [r["messages"][1]["content"] for r in train]
    assert all(80 <= len(a) <= 600 for a in answers)
    # the grader's RougeL only sees ASCII words and numbers: every answer carries some
    assert all(len(ASCII_TERM.findall(a)) >= 3 for a in answers)
    code = sum("```" in a for a in answers)
    assert 0.2 <= code / len(answers) <= 0.4


def test_heldout_is_paraphrased_and_never_trained_on(train: list[dict], heldout: list[dict]):
    seen = {r["messages"][0]["content"] for r in train}
    seen |= {v for r in train for v in r.get("question_variants", [])}
    by_id = {r["id"]: r for r in train}
    assert len(heldout) >= 100
    for row in heldout:
        question, reference = (m["content"] for m in row["messages"])
        assert question not in seen, row["id"]
        source = by_id[row["source_id"]]
        assert reference != source["messages"][1]["content"], row["id"]


def test_question_variants_are_other_phrasings(train: list[dict]):
    for row in train:
        variants = row.get("question_variants", [])
        assert row["messages"][0]["content"] not in variants
        assert len(set(variants)) == len(variants)


def test_loaders_agree_with_the_file(train: list[dict]):
    pairs = load_pairs(ROOT / "data.jsonl")
    assert len(pairs) == len(train) == len(load_questions(ROOT / "data.jsonl"))
    assert pairs[0].questions[0] == train[0]["messages"][0]["content"]
    assert len(pairs[0].questions) == 1 + len(train[0].get("question_variants", []))


def test_warm_up_spreads_over_the_data_set(tmp_path: Path, train: list[dict]):
    questions = warmup_questions()
    assert len(questions) == 12 and len(set(questions)) == 12
    assert set(questions) <= {r["messages"][0]["content"] for r in train}
    assert any("代码" in q or "写" in q for q in questions)  # code questions warm up too
    assert len(warmup_questions(path=tmp_path / "missing.jsonl")) == 12
