"""Per-question token budgets.

pytest tests/answering/test_budget.py -q
"""

from __future__ import annotations

import dataclasses

import pytest

from qaserve.answering.budget import BudgetRules, budget_for, question_kind
from qaserve.defaults import DEFAULT_CODE_PATTERN, DEFAULT_LONG_PATTERN
from qaserve.settings import load_settings


@pytest.fixture
def rules() -> BudgetRules:
    # Explicit values, so exported MAX_NEW_TOKENS etc. in the developer's shell cannot change them.
    return BudgetRules(
        cap=512,
        enabled=True,
        short=128,
        long=256,
        code=384,
        code_pattern=DEFAULT_CODE_PATTERN,
        long_pattern=DEFAULT_LONG_PATTERN,
    )


def test_from_settings_copies_fields() -> None:
    settings = load_settings(
        max_new_tokens=300,
        token_budgets=False,
        short_max_new_tokens=10,
        long_max_new_tokens=20,
        code_max_new_tokens=30,
        code_pattern="kernel",
        long_pattern="why",
    )
    assert BudgetRules.from_settings(settings) == BudgetRules(
        cap=300,
        enabled=False,
        short=10,
        long=20,
        code=30,
        code_pattern="kernel",
        long_pattern="why",
    )


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("什么是CUDA？", "short"),
        ("What is a warp?", "short"),
        ("请详细解释 warp divergence 的原理", "long"),
        ("Explain tiling.", "long"),
        ("EXPLAIN tiling.", "long"),
        ("请编写一个向量加法的 CUDA 核函数", "code"),
        ("Write a kernel for matrix multiplication", "code"),
        ("请详细解释并写出 reduction 的代码", "code"),  # code wins over long
        ("What does rewrite mean here?", "short"),  # \bwrite\b: not a word inside another
    ],
)
def test_question_kind(rules: BudgetRules, question: str, kind: str) -> None:
    assert question_kind(question, rules) == kind


def test_budget_per_kind(rules: BudgetRules) -> None:
    assert budget_for("什么是CUDA？", rules) == 128
    assert budget_for("为什么要使用共享内存？", rules) == 256
    assert budget_for("写一个 CUDA kernel", rules) == 384


def test_budget_capped(rules: BudgetRules) -> None:
    capped = dataclasses.replace(rules, cap=200)
    assert budget_for("写一个 CUDA kernel", capped) == 200
    assert budget_for("什么是CUDA？", capped) == 128


def test_disabled_gives_everyone_the_cap(rules: BudgetRules) -> None:
    off = dataclasses.replace(rules, enabled=False, cap=77)
    assert {budget_for(q, off) for q in ["什么是CUDA？", "为什么？", "写代码"]} == {77}


def test_budget_at_least_one(rules: BudgetRules) -> None:
    assert budget_for("x", dataclasses.replace(rules, cap=0)) == 1
    assert budget_for("x", dataclasses.replace(rules, short=0)) == 1
    assert budget_for("x", dataclasses.replace(rules, enabled=False, cap=-5)) == 1


def test_empty_pattern_matches_nothing(rules: BudgetRules) -> None:
    no_patterns = dataclasses.replace(rules, code_pattern="", long_pattern="")
    assert question_kind("写一个 kernel，并详细解释", no_patterns) == "short"


def test_custom_patterns(rules: BudgetRules) -> None:
    custom = dataclasses.replace(rules, code_pattern=r"\bkernel\b", long_pattern=r"\bhow\b")
    assert question_kind("How do I launch a KERNEL?", custom) == "code"
    assert question_kind("How does it scale?", custom) == "long"
    assert question_kind("写一个", custom) == "short"
