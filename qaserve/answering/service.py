"""Answering questions: prompts, budgets, one concurrent engine call, cleanup, accounting.

`QAService.answer_batch()` is the grader path, testable without HTTP. It always returns
exactly one answer per question, in order: failed or cut items become what they produced
(possibly ""), counted and logged, never an exception for the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from qaserve.answering.budget import BudgetRules, budget_for, question_kind
from qaserve.answering.cleanup import clean_answer, shorten
from qaserve.engines.base import Engine, GenParams, GenResult
from qaserve.paths import PROJECT_DATA
from qaserve.questions import warmup_questions

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, Iterator

    from qaserve.answering.prompts import Prompt, PromptBuilder
    from qaserve.settings import Settings

log = logging.getLogger(__name__)
MIN_ANSWER_ROOM = 16  # tokens a prompt always leaves for its answer: longer prompts are cut


class Count(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class Sizes(Protocol):
    def observe(self, amount: float) -> None: ...


class ServiceMetrics(Protocol):
    """What the service counts into; the server's Prometheus `Metrics` is one (read-only
    members, so any object holding such counters fits)."""

    @property
    def batch_size(self) -> Sizes: ...
    @property
    def items(self) -> Count: ...
    @property
    def empty(self) -> Count: ...
    @property
    def failed(self) -> Count: ...
    @property
    def malformed(self) -> Count: ...
    @property
    def cut(self) -> Count: ...
    @property
    def aborted(self) -> Count: ...
    @property
    def truncated(self) -> Count: ...
    @property
    def prompt_tokens(self) -> Count: ...
    @property
    def answer_tokens(self) -> Count: ...
    @property
    def prompt_chars(self) -> Count: ...
    @property
    def answer_chars(self) -> Count: ...


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
        self, settings: Settings, engine: Engine, builder: PromptBuilder, metrics: ServiceMetrics
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
            presence_penalty=settings.presence_penalty,
            stop=tuple(settings.stop_strings)
            + (("\n\n",) if settings.stop_on_double_newline else ()),
        )

    def params(self, budget: int, overrides: dict[str, Any]) -> GenParams:
        """Defaults, the item's budget, then the request's explicit overrides."""
        given = {k: v for k, v in overrides.items() if v is not None}
        if "stop" in given:
            given["stop"] = tuple(self.defaults.stop) + tuple(given["stop"])
        return replace(self.defaults, **{"max_new_tokens": budget, **given})

    def prompt_limit(self, params: GenParams) -> int:
        """The most tokens a prompt may have: the context, less a little room for its answer."""
        return self.settings.max_model_len - min(params.max_new_tokens, MIN_ANSWER_ROOM)

    def fitted(self, params: GenParams, prompt_ids: list[int]) -> GenParams:
        """The budget capped to the room the prompt leaves: the prompt is fitted first, so a
        large budget never cuts a prompt that fits the context on its own."""
        room = self.settings.max_model_len - len(prompt_ids)
        return replace(params, max_new_tokens=max(1, min(params.max_new_tokens, room)))

    def plan(
        self, questions: list[str], overrides: dict[str, Any]
    ) -> tuple[list[Prompt], list[GenParams]]:
        """The exact prompts and sampling parameters the engine gets for these questions."""
        params = [self.params(budget_for(q, self.rules), overrides) for q in questions]
        limits = [self.prompt_limit(p) for p in params]
        prompts = self.builder.question_prompts(self.system_prompt, questions, limits)
        return prompts, [self.fitted(p, q.token_ids) for p, q in zip(params, prompts, strict=True)]

    async def answer_batch(
        self,
        questions: list[str],
        overrides: dict[str, Any] | None = None,
        record: bool = True,
        share: bool = True,
    ) -> BatchOutcome:
        """One answer per question, in order; `record=False` leaves the metrics and the batch
        log line to the caller (`account`), e.g. until it knows the batch is answered;
        `share=False` generates identical items apart (a warm-up at the grader's batch size)."""
        start = time.monotonic()
        overrides = overrides or {}
        outcome = BatchOutcome(answers=[""] * len(questions))
        live = [i for i, q in enumerate(questions) if q.strip()]  # blank question -> ""
        if live:
            with collector_paused(self.settings.gc_freeze):
                await self._answer_live(questions, live, overrides, outcome, start, share)
        outcome.seconds = time.monotonic() - start
        outcome.empty = sum(1 for a in outcome.answers if not a)
        if record:
            self.account(questions, outcome)
        return outcome

    async def _answer_live(
        self,
        questions: list[str],
        live: list[int],
        overrides: dict[str, Any],
        outcome: BatchOutcome,
        start: float,
        share: bool = True,
    ) -> None:
        prompts, params = await asyncio.to_thread(
            self.plan, [questions[i] for i in live], overrides
        )
        if self.settings.log_token_routing:
            log.info("budgets: %s", dict(Counter(p.max_new_tokens for p in params)))
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("budgets: %s", [p.max_new_tokens for p in params])
        deadline = start + self.settings.predict_deadline_s
        first = same_as(prompts, params) if share and self.settings.dedupe_questions else None
        distinct = sorted(set(first)) if first else list(range(len(prompts)))
        try:
            generated = await self.engine.generate(
                [prompts[i].token_ids for i in distinct], [params[i] for i in distinct], deadline
            )
        except Exception as exc:  # the batch still answers: every item "" and counted failed
            log.exception("the engine failed the whole batch")
            error = f"{type(exc).__name__}: {exc}"
            generated = [GenResult(finish="error", error=error) for _ in distinct]
        by_item = dict(zip(distinct, generated, strict=True))
        results = [by_item[first[i] if first else i] for i in range(len(prompts))]
        for i, prompt, result in zip(live, prompts, results, strict=True):
            outcome.answers[i] = self.finish_answer(questions[i], result.text)
            outcome.truncated += prompt.truncated
            outcome.prompt_tokens += len(prompt.token_ids)
            outcome.failed += result.finish == "error"
            outcome.cut += result.finish == "deadline"
        outcome.answer_tokens = sum(r.token_count for r in generated)  # generated, not copied
        outcome.results = results
        log_failures(generated)

    def finish_answer(self, question: str, text: str) -> str:
        """Cleanup, then (when asked) the short-answer post-processing of short questions."""
        answer = clean_answer(text, self.settings.trim_answers)
        s = self.settings
        if (s.output_trim_examples or s.output_max_sentences) and (
            question_kind(question, self.rules) == "short"
        ):
            answer = shorten(answer, s.output_trim_examples, s.output_max_sentences)
        return answer

    def account(self, questions: list[str], outcome: BatchOutcome, malformed: int = 0) -> None:
        """Count an answered batch in the metrics and log its one INFO line."""
        chars_in = sum(len(q) for q in questions)
        chars_out = sum(len(a) for a in outcome.answers)
        self.metrics.batch_size.observe(len(questions))
        self._count(len(questions), chars_in, chars_out, outcome)
        self.metrics.empty.inc(outcome.empty)
        self.metrics.cut.inc(outcome.cut)
        self.metrics.truncated.inc(outcome.truncated)
        self.metrics.malformed.inc(malformed)
        rate = chars_out / outcome.seconds if outcome.seconds > 0 else 0.0
        log.info(
            "batch: %d items, %d chars in, %d chars out, %.2f s, %.0f chars/s, %d tokens out, "
            "%d empty, %d failed, %d cut by deadline, %d prompts truncated, %d malformed",
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
            malformed,
        )
        if outcome.cut:
            log.warning(
                "deadline of %.0f s cut %d answers", self.settings.predict_deadline_s, outcome.cut
            )

    def _count(self, items: int, chars_in: int, chars_out: int, outcome: BatchOutcome) -> None:
        """The work metrics both APIs share: items, characters, tokens, failures."""
        m = self.metrics
        m.items.inc(items)
        m.prompt_chars.inc(chars_in)
        m.answer_chars.inc(chars_out)
        m.prompt_tokens.inc(outcome.prompt_tokens)
        m.answer_tokens.inc(outcome.answer_tokens)
        m.failed.inc(outcome.failed)

    def chat_plan(
        self, messages: list[dict[str, str]], overrides: dict[str, Any]
    ) -> tuple[list[int], GenParams]:
        """Token ids of the conversation (with the server's system prompt when the client gave
        none) and its parameters, the budget fitted to the room the prompt leaves."""
        if self.system_prompt and not any(m["role"] == "system" for m in messages):
            messages = [{"role": "system", "content": self.system_prompt}, *messages]
        params = self.params(self.settings.max_new_tokens, overrides)
        ids = self.builder.chat_prompt(messages, self.prompt_limit(params)).token_ids
        return ids, self.fitted(params, ids)

    def _account_chat(self, messages: list[dict[str, str]], text: str, usage: Usage) -> None:
        chars_in = sum(len(m["content"]) for m in messages)
        done = BatchOutcome([text], prompt_tokens=usage.prompt_tokens)
        done.answer_tokens, done.failed = usage.completion_tokens, usage.failed
        self._count(1, chars_in, len(text), done)

    async def chat(
        self, messages: list[dict[str, str]], overrides: dict[str, Any]
    ) -> tuple[GenResult, Usage]:
        """One non-streamed chat answer and its token counts."""
        ids, params = await asyncio.to_thread(self.chat_plan, messages, overrides)
        deadline = time.monotonic() + self.settings.predict_deadline_s
        (result,) = await self.engine.generate([ids], [params], deadline)
        usage = Usage(len(ids), result.token_count, failed=result.finish == "error")
        self._account_chat(messages, result.text, usage)
        if result.finish == "error":
            log_failures([result])
            raise RuntimeError(f"generation failed: {result.error}")
        result.text = clean_answer(result.text, self.settings.trim_answers)
        return result, usage

    async def chat_stream(
        self, messages: list[dict[str, str]], overrides: dict[str, Any], usage: Usage
    ) -> AsyncGenerator[tuple[str, str | None], None]:
        """(text, finish) increments, raw (no cleanup: pieces cannot be trimmed in flight);
        past PREDICT_DEADLINE_S the stream ends with finish "deadline". `usage` is filled in
        as it goes (streams report it when asked)."""
        ids, params = await asyncio.to_thread(self.chat_plan, messages, overrides)
        usage.prompt_tokens = len(ids)
        deadline = time.monotonic() + self.settings.predict_deadline_s
        finished, text = False, []
        try:
            # closed on leaving, so the engine frees the request at the deadline, not at GC
            async with contextlib.aclosing(self.engine.stream(ids, params, deadline)) as pieces:
                async for piece, finish, tokens in pieces:
                    finished = finish is not None
                    usage.completion_tokens += tokens
                    text.append(piece)
                    yield piece, finish
                    if not finished and time.monotonic() > deadline:
                        finished = True
                        yield "", "deadline"
                        return
        except (asyncio.CancelledError, GeneratorExit):
            if not finished:
                self.metrics.aborted.inc()  # the client went away mid-stream
                log.info("stream client went away: 1 item aborted")
            raise
        except Exception:
            usage.failed = True
            raise
        finally:
            self._account_chat(messages, "".join(text), usage)

    async def warm_up(self) -> None:
        """A short batch of the project's questions (every kind): the first graded batch pays
        no first-run costs. A warm-up whose every item the engine refused stops the start, with
        the engine's message: such a server would answer "" to every question."""
        start = time.monotonic()
        s = self.settings
        path = s.warmup_data_path or PROJECT_DATA
        questions = await asyncio.to_thread(warmup_questions, s.warmup_num_samples, path)
        questions = questions * s.warmup_repeat  # one batch: the grader sends one too
        outcome = await self.answer_batch(
            questions, {"max_new_tokens": s.warmup_max_new_tokens}, record=False, share=False
        )
        if outcome.results and all(r.finish == "error" for r in outcome.results):
            raise RuntimeError(
                f"every warm-up item failed in the engine: {outcome.results[0].error}; "
                "check the sampling settings (TEMPERATURE, STOP_STRINGS, ...)"
            )
        log.info("warm-up: %d items in %.1f s", len(outcome.answers), time.monotonic() - start)


def same_as(prompts: list[Prompt], params: list[GenParams]) -> list[int]:
    """Each item's first identical greedy item (itself when none): a greedy answer depends on
    its prompt and parameters alone, so identical items are generated once and shared."""
    first: dict[tuple[tuple[int, ...], GenParams], int] = {}
    return [
        first.setdefault((tuple(p.token_ids), sp), i) if sp.temperature == 0 else i
        for i, (p, sp) in enumerate(zip(prompts, params, strict=True))
    ]


_paused = 0  # batches in flight that asked for the collector to wait


@contextlib.contextmanager
def collector_paused(enabled: bool) -> Iterator[None]:
    """No cyclic garbage collection while a batch is in flight (GC_FREEZE): a full collection
    walks every object of the process, and a batch allocates enough to trigger several."""
    global _paused
    if not enabled:
        yield
        return
    _paused += 1
    gc.disable()
    try:
        yield
    finally:
        _paused -= 1
        if _paused == 0:
            gc.enable()


@dataclass
class Usage:
    """Token counts of one chat answer (OpenAI's `usage`), and whether it failed."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    failed: bool = False


def log_failures(results: list[GenResult]) -> None:
    """One WARNING per distinct engine error of a batch, with its count and message."""
    errors = Counter(r.error or "unknown error" for r in results if r.finish == "error")
    for message, count in errors.items():
        log.warning("%d item(s) failed in the engine: %s", count, message)
