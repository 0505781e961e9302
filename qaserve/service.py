"""Answering questions: prompts, budgets, one concurrent engine call, cleanup, accounting.

`QAService.answer_batch()` is the grader path, testable without HTTP. It always returns
exactly one answer per question, in order: failed or cut items become what they produced
(possibly ""), counted and logged, never an exception for the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from qaserve.budget import BudgetRules, budget_for
from qaserve.engines.base import Engine, GenParams, GenResult
from qaserve.postprocess import clean_answer

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator

    from qaserve.metrics import Metrics
    from qaserve.prompts import Prompt, PromptBuilder
    from qaserve.settings import Settings

log = logging.getLogger(__name__)
MIN_PROMPT_ROOM = 16  # tokens always left for the prompt when an answer budget is huge


@dataclass
class BatchOutcome:
    answers: list[str]
    seconds: float = 0.0
    empty: int = 0
    failed: int = 0
    cut: int = 0
    truncated: int = 0
    prompt_tokens: int = 0
    answer_tokens: int = 0
    results: list[GenResult] = field(default_factory=list)


class QAService:
    """Everything between a validated request and the engine."""

    def __init__(
        self, settings: Settings, engine: Engine, builder: PromptBuilder, metrics: Metrics
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.builder = builder
        self.metrics = metrics
        self.rules = BudgetRules.from_settings(settings)
        self.system_prompt = settings.system_prompt
        self.defaults = GenParams(
            max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            top_k=settings.top_k,
            repetition_penalty=settings.repetition_penalty,
            frequency_penalty=settings.frequency_penalty,
            stop=tuple(settings.stop_strings),
        )

    def params(self, budget: int, overrides: dict[str, Any]) -> GenParams:
        """Defaults, the item's budget, then the request's explicit overrides."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if "stop" in given:
            given["stop"] = tuple(self.defaults.stop) + tuple(given["stop"])
        params = replace(self.defaults, **{"max_new_tokens": budget, **given})
        ceiling = self.settings.max_model_len - MIN_PROMPT_ROOM
        return replace(params, max_new_tokens=max(1, min(params.max_new_tokens, ceiling)))

    def plan(
        self, questions: list[str], overrides: dict[str, Any]
    ) -> tuple[list[Prompt], list[GenParams]]:
        """The exact prompts and sampling parameters the engine gets for these questions."""
        params = [self.params(budget_for(q, self.rules), overrides) for q in questions]
        limits = [self.settings.max_model_len - p.max_new_tokens for p in params]
        return self.builder.question_prompts(self.system_prompt, questions, limits), params

    async def answer_batch(
        self, questions: list[str], overrides: dict[str, Any] | None = None, record: bool = True
    ) -> BatchOutcome:
        """One answer per question, in order; `record=False` keeps it out of the metrics."""
        start = time.monotonic()
        overrides = overrides or {}
        outcome = BatchOutcome(answers=[""] * len(questions))
        live = [i for i, q in enumerate(questions) if q.strip()]  # blank question -> ""
        if live:
            await self._answer_live(questions, live, overrides, outcome, start)
        outcome.seconds = time.monotonic() - start
        outcome.empty = sum(1 for a in outcome.answers if not a)
        if record:
            self._account(questions, outcome)
        return outcome

    async def _answer_live(
        self,
        questions: list[str],
        live: list[int],
        overrides: dict[str, Any],
        outcome: BatchOutcome,
        start: float,
    ) -> None:
        prompts, params = await asyncio.to_thread(
            self.plan, [questions[i] for i in live], overrides
        )
        if log.isEnabledFor(logging.DEBUG):
            log.debug("budgets: %s", [p.max_new_tokens for p in params])
        deadline = start + self.settings.predict_deadline_s
        try:
            results = await self.engine.generate([p.token_ids for p in prompts], params, deadline)
        except Exception as exc:  # the batch still answers: every item "" and counted failed
            log.exception("the engine failed the whole batch")
            results = [GenResult(finish="error", error=type(exc).__name__) for _ in prompts]
        for i, prompt, result in zip(live, prompts, results, strict=True):
            outcome.answers[i] = clean_answer(result.text, self.settings.trim_answers)
            outcome.truncated += prompt.truncated
            outcome.prompt_tokens += len(prompt.token_ids)
            outcome.answer_tokens += result.token_count
            outcome.failed += result.finish == "error"
            outcome.cut += result.finish == "deadline"
        outcome.results = results

    def _account(self, questions: list[str], outcome: BatchOutcome) -> None:
        m = self.metrics
        chars_in = sum(len(q) for q in questions)
        chars_out = sum(len(a) for a in outcome.answers)
        m.batch_size.observe(len(questions))
        m.items.inc(len(questions))
        m.empty.inc(outcome.empty)
        m.failed.inc(outcome.failed)
        m.cut.inc(outcome.cut)
        m.truncated.inc(outcome.truncated)
        m.prompt_tokens.inc(outcome.prompt_tokens)
        m.answer_tokens.inc(outcome.answer_tokens)
        m.prompt_chars.inc(chars_in)
        m.answer_chars.inc(chars_out)
        rate = chars_out / outcome.seconds if outcome.seconds > 0 else 0.0
        log.info(
            "batch: %d items, %d chars in, %d chars out, %.2f s, %.0f chars/s, %d tokens out, "
            "%d empty, %d failed, %d cut by deadline, %d prompts truncated",
            len(questions),
            chars_in,
            chars_out,
            outcome.seconds,
            rate,
            outcome.answer_tokens,
            outcome.empty,
            outcome.failed,
            outcome.cut,
            outcome.truncated,
        )
        if outcome.cut:
            log.warning(
                "deadline of %.0f s cut %d answers", self.settings.predict_deadline_s, outcome.cut
            )

    def chat_messages(self, messages: list[dict[str, str]]) -> list[dict[str, str]]:
        """The conversation, with the server's system prompt when the client gave none."""
        if any(m["role"] == "system" for m in messages) or not self.system_prompt:
            return messages
        return [{"role": "system", "content": self.system_prompt}, *messages]

    def chat_params(self, overrides: dict[str, Any]) -> GenParams:
        return self.params(self.settings.max_new_tokens, overrides)

    def chat_prompt_ids(self, messages: list[dict[str, str]], params: GenParams) -> list[int]:
        limit = self.settings.max_model_len - params.max_new_tokens
        return self.builder.chat_prompt(self.chat_messages(messages), limit).token_ids

    async def chat(
        self, messages: list[dict[str, str]], overrides: dict[str, Any]
    ) -> tuple[GenResult, int]:
        """One non-streamed chat answer and its prompt token count."""
        params = self.chat_params(overrides)
        ids = await asyncio.to_thread(self.chat_prompt_ids, messages, params)
        deadline = time.monotonic() + self.settings.predict_deadline_s
        (result,) = await self.engine.generate([ids], [params], deadline)
        if result.finish == "error":
            raise RuntimeError(f"generation failed: {result.error}")
        result.text = clean_answer(result.text, self.settings.trim_answers)
        return result, len(ids)

    async def chat_stream(
        self, messages: list[dict[str, str]], overrides: dict[str, Any]
    ) -> AsyncGenerator[tuple[str, str | None], None]:
        """(text, finish) increments, raw (no cleanup: pieces cannot be trimmed in flight);
        past PREDICT_DEADLINE_S the stream ends with finish "deadline"."""
        params = self.chat_params(overrides)
        ids = await asyncio.to_thread(self.chat_prompt_ids, messages, params)
        deadline = time.monotonic() + self.settings.predict_deadline_s
        finished = False
        try:
            # closed on leaving, so the engine frees the request at the deadline, not at GC
            async with contextlib.aclosing(self.engine.stream(ids, params)) as pieces:
                async for piece, finish in pieces:
                    finished = finish is not None
                    yield piece, finish
                    if not finished and time.monotonic() > deadline:
                        yield "", "deadline"
                        return
        except (asyncio.CancelledError, GeneratorExit):
            if finished:
                raise
            self.metrics.aborted.inc()  # the client went away mid-stream
            log.info("stream client went away: 1 item aborted")
            raise

    async def warm_up(self) -> None:
        """A short batch of the project's questions (every kind): the first graded batch pays
        no first-run costs."""
        start = time.monotonic()
        from qaserve.questions import warmup_questions

        questions = await asyncio.to_thread(warmup_questions)
        outcome = await self.answer_batch(questions, {"max_new_tokens": 8}, record=False)
        log.info("warm-up: %d items in %.1f s", len(outcome.answers), time.monotonic() - start)
