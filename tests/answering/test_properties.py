"""Hypothesis properties of the pure parts: budgets, question prompts, answer count, scoring.

    pytest tests/answering/test_properties.py -q     # ~30 s (the real Qwen tokenizer)

Complements test_budget.py, test_prompts.py and tests/evaluation/test_scoring.py (examples).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from qaserve.answering.budget import BudgetRules, budget_for, question_kind
from qaserve.answering.prompts import PromptBuilder
from qaserve.answering.service import QAService
from qaserve.defaults import DEFAULT_CODE_PATTERN, DEFAULT_LONG_PATTERN
from qaserve.evaluation.scoring import grader_rouge_l
from qaserve.server.metrics import Metrics
from qaserve.settings import load_settings
from tests.support.fake_engine import FAIL_MARKER, FakeEngine, clear_settings_env

FAST = settings(max_examples=200, deadline=None, database=None)
SLOW = settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CODE_WORDS = ["代码", "编写", "写出", "实现", "code", "implement", "write"]
LONG_WORDS = ["详细", "解释", "原理", "步骤", "为什么", "explain", "compare", "why"]
WORDS = st.sampled_from([*CODE_WORDS, *LONG_WORDS, "CUDA", "线程", "warp", " ", "？", "a"])
QUESTION = st.lists(WORDS, max_size=8).map(" ".join) | st.text(max_size=40)
# Text the chat template keeps as it is: no role markers (those are a finding of their own).
PLAIN = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="<|>"), max_size=300
)


def rules_strategy() -> st.SearchStrategy[BudgetRules]:
    budget = st.integers(min_value=-5, max_value=5000)
    return st.builds(
        BudgetRules,
        cap=budget,
        enabled=st.booleans(),
        short=budget,
        long=budget,
        code=budget,
        code_pattern=st.just(DEFAULT_CODE_PATTERN),
        long_pattern=st.just(DEFAULT_LONG_PATTERN),
    )


@FAST
@given(rules_strategy(), QUESTION)
def test_budget_is_within_1_and_the_cap(rules: BudgetRules, question: str) -> None:
    budget = budget_for(question, rules)
    assert 1 <= budget <= max(1, rules.cap)
    if rules.enabled:
        kind = question_kind(question, rules)
        assert budget == max(1, min(getattr(rules, kind), rules.cap))


@FAST
@given(rules_strategy(), st.sampled_from(CODE_WORDS), st.sampled_from(LONG_WORDS), QUESTION)
def test_code_beats_long(rules: BudgetRules, code: str, long: str, rest: str) -> None:
    for question in (f"{long} {rest} {code}", f"{code} {rest} {long}"):
        assert question_kind(question, rules) == "code"
        if rules.enabled:
            assert budget_for(question, rules) == max(1, min(rules.code, rules.cap))


@SLOW
@given(
    system=PLAIN,
    items=st.lists(
        st.tuples(PLAIN | PLAIN.map(lambda t: t * 40), st.integers(min_value=64, max_value=400)),
        max_size=6,
    ),
)
def test_question_prompts_fit_and_keep_the_system_prompt(
    qwen_tokenizer: Any, system: str, items: list[tuple[str, int]]
) -> None:
    builder = PromptBuilder(qwen_tokenizer, "auto")
    questions, limits = [q for q, _ in items], [n for _, n in items]
    prompts = builder.question_prompts(system, questions, limits)
    assert len(prompts) == len(questions)
    empty = builder._prompt(builder.messages_for(system, ""), truncated=True)
    for prompt, limit in zip(prompts, limits, strict=True):
        assert len(prompt.token_ids) <= limit
        event(f"truncated={prompt.truncated}")
        if system.strip() and len(empty.token_ids) <= limit:  # the system prompt fits: kept
            assert system.strip() in prompt.text


@SLOW
@given(st.lists(st.one_of(QUESTION, st.sampled_from(["", " ", "\n\t", FAIL_MARKER])), max_size=30))
def test_answer_count_equals_question_count(qwen_tokenizer: Any, questions: list[str]) -> None:
    with pytest.MonkeyPatch.context() as mp:  # the shell's MAX_MODEL_LEN etc. do not count
        clear_settings_env(mp)
        settings_ = load_settings(model_dir="unused", warmup=False, max_new_tokens=64)
    service = QAService(
        settings_,
        FakeEngine().attach(qwen_tokenizer),
        PromptBuilder(qwen_tokenizer, "auto"),
        Metrics(),
    )
    outcome = asyncio.run(service.answer_batch(questions))
    assert len(outcome.answers) == len(questions)
    for question, answer in zip(questions, outcome.answers, strict=True):
        if not question.strip():
            assert answer == ""
        elif FAIL_MARKER not in question:
            assert answer  # "answer to ..." from the fake, whatever the question


SCORED = st.text(max_size=60) | st.lists(WORDS, max_size=10).map(" ".join)


@settings(max_examples=100, deadline=None, database=None)
@given(SCORED, SCORED)
def test_grader_rouge_l_is_in_unit_interval_and_symmetric(ref: str, pred: str) -> None:
    assume(ref or pred)
    score = grader_rouge_l(ref, pred)
    assert 0.0 <= score <= 1.0
    assert abs(grader_rouge_l(pred, ref) - score) < 1e-12
