"""Per-question token budget: short, long and code questions get their own `max_tokens`.

    python -c "from qaserve.answering.budget import *; from qaserve.settings import Settings; \
print(budget_for('请写出CUDA核函数', BudgetRules.from_settings(Settings())))"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from qaserve.settings import Settings

QuestionKind = Literal["short", "long", "code"]


@dataclass(frozen=True)
class BudgetRules:
    """How many new tokens each kind of question may use; `cap` bounds them all."""

    cap: int
    enabled: bool
    short: int
    long: int
    code: int
    code_pattern: str
    long_pattern: str
    code_keywords: tuple[str, ...] = ()
    long_keywords: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> BudgetRules:
        return cls(
            cap=settings.max_new_tokens,
            enabled=settings.token_budgets,
            short=settings.short_max_new_tokens,
            long=settings.long_max_new_tokens,
            code=settings.code_max_new_tokens,
            code_pattern=settings.code_pattern,
            long_pattern=settings.long_pattern,
            code_keywords=tuple(k.lower() for k in settings.code_question_keywords),
            long_keywords=tuple(k.lower() for k in settings.long_answer_keywords),
        )


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _matches(question: str, pattern: str, keywords: tuple[str, ...]) -> bool:
    if pattern and _compiled(pattern).search(question):
        return True
    lowered = question.lower()
    return any(k in lowered for k in keywords)  # the predecessor's comma lists: plain words


def question_kind(question: str, rules: BudgetRules) -> QuestionKind:
    """`code` if the question asks for code, else `long` if it wants detail, else `short`."""
    if _matches(question, rules.code_pattern, rules.code_keywords):
        return "code"
    if _matches(question, rules.long_pattern, rules.long_keywords):
        return "long"
    return "short"


def budget_for(question: str, rules: BudgetRules) -> int:
    """The question's `max_tokens`: its kind's budget, never above the cap, never below 1."""
    if not rules.enabled:
        return max(1, rules.cap)
    kind_budget = {"short": rules.short, "long": rules.long, "code": rules.code}
    return max(1, min(kind_budget[question_kind(question, rules)], rules.cap))
