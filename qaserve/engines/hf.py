"""Transformers fallback engine: batched `generate` on the same token ids vLLM would get.

Slower than vLLM (no continuous batching; one generate at a time on the device) but it
answers wherever torch runs. `frequency_penalty` has no transformers equivalent: ignored.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qaserve.engines.base import EngineInfo, GenParams, GenResult

if TYPE_CHECKING:
    from qaserve.settings import Settings

CHUNK = 32  # sequences per generate call; bigger chunks pad more on CPU


def _sampling_key(p: GenParams) -> tuple[Any, ...]:
    return (p.temperature, p.top_p, p.top_k, p.repetition_penalty, p.seed)


def cut_at_stop(text: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """Text up to the first stop string, and whether one was found."""
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return (text[: min(hits)], True) if hits else (text, False)


class HfEngine:
    """`AutoModelForCausalLM.generate`, greedy unless a temperature is set."""

    def __init__(self, model: Any, tokenizer: Any, info: EngineInfo, stop_ids: list[int]):
        self._model = model
        self._tok = tokenizer
        self.info = info
        self._stop_ids = stop_ids
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
        self._lock = threading.Lock()  # one generate on the device at a time

    @classmethod
    def load(
        cls, settings: Settings, model_dir: Path, tokenizer: Any, stop_ids: list[int]
    ) -> HfEngine:
        import torch
        import transformers

        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = "auto" if settings.dtype == "auto" else getattr(torch, settings.dtype)
        auto: Any = transformers.AutoModelForCausalLM
        try:  # transformers >= 4.56 calls it `dtype`
            model = auto.from_pretrained(str(model_dir), dtype=dtype)
        except TypeError:  # pragma: no cover - older transformers
            model = auto.from_pretrained(str(model_dir), torch_dtype=dtype)
        model.to(device).eval()
        info = EngineInfo(
            name="transformers",
            version=transformers.__version__,
            model=str(model_dir),
            details={"device": device, "dtype": str(model.dtype)},
        )
        return cls(model, tokenizer, info, stop_ids)

    async def generate(
        self, prompts: list[list[int]], params: list[GenParams], deadline: float | None
    ) -> list[GenResult]:
        stop = threading.Event()
        try:
            return await asyncio.to_thread(self._generate_all, prompts, params, deadline, stop)
        except asyncio.CancelledError:  # the client went away: end the thread's generate too
            stop.set()
            raise

    def _generate_all(
        self,
        prompts: list[list[int]],
        params: list[GenParams],
        deadline: float | None,
        stop: threading.Event,
    ) -> list[GenResult]:
        results = [GenResult() for _ in prompts]
        order = sorted(
            range(len(prompts)), key=lambda i: (_sampling_key(params[i]), len(prompts[i]))
        )
        chunks: list[list[int]] = []
        for i in order:
            if (
                chunks
                and len(chunks[-1]) < CHUNK
                and (_sampling_key(params[chunks[-1][0]]) == _sampling_key(params[i]))
            ):
                chunks[-1].append(i)
            else:
                chunks.append([i])
        for chunk in chunks:
            if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                for i in chunk:
                    results[i].finish = "deadline"
                continue
            try:
                texts = self._generate_chunk(
                    [prompts[i] for i in chunk], [params[i] for i in chunk], deadline, stop
                )
            except Exception as exc:  # one failing chunk must not take down the batch
                for i in chunk:
                    results[i] = GenResult(finish="error", error=f"{type(exc).__name__}: {exc}")
                continue
            for i, result in zip(chunk, texts, strict=True):
                results[i] = result
        return results

    def _generate_chunk(
        self,
        prompts: list[list[int]],
        params: list[GenParams],
        deadline: float | None,
        stop: threading.Event,
    ) -> list[GenResult]:
        import torch

        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, p in enumerate(prompts):  # left padding so every answer starts at `width`
            if p:
                ids[row, width - len(p) :] = torch.tensor(p)
                mask[row, width - len(p) :] = 1
        first = params[0]
        budget = max(p.max_new_tokens for p in params)
        kwargs = self._generate_kwargs(first, budget, deadline, stop)
        with self._lock, torch.inference_mode():
            out = self._model.generate(
                input_ids=ids.to(self._model.device),
                attention_mask=mask.to(self._model.device),
                **kwargs,
            )
        timed_out = deadline is not None and time.monotonic() >= deadline
        return [
            self._result(row[width:].tolist(), p, timed_out)
            for row, p in zip(out, params, strict=True)
        ]

    def _generate_kwargs(
        self, p: GenParams, max_new: int, deadline: float | None, stop: threading.Event
    ) -> dict[str, Any]:
        import transformers

        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new,
            "eos_token_id": self._stop_ids,
            "pad_token_id": self._pad_id,
            "repetition_penalty": p.repetition_penalty,
        }
        if p.temperature > 0:
            kwargs.update(
                do_sample=True, temperature=p.temperature, top_p=p.top_p, top_k=p.top_k or None
            )
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        kwargs["stopping_criteria"] = transformers.StoppingCriteriaList([_Deadline(deadline, stop)])
        return kwargs

    def _result(self, tokens: list[int], p: GenParams, timed_out: bool) -> GenResult:
        tokens = tokens[: p.max_new_tokens]  # greedy: a shorter budget is a prefix of a longer one
        stopped = False
        for n, t in enumerate(tokens):
            if t in self._stop_ids:
                tokens, stopped = tokens[:n], True
                break
        text, hit = cut_at_stop(self._tok.decode(tokens, skip_special_tokens=True), p.stop)
        if stopped or hit:
            finish = "stop"
        else:
            finish = "deadline" if timed_out and len(tokens) < p.max_new_tokens else "length"
        return GenResult(text=text, token_count=len(tokens), finish=finish)

    async def stream(
        self, prompt: list[int], params: GenParams, deadline: float | None
    ) -> AsyncGenerator[tuple[str, str | None, int], None]:
        # the fallback does not stream token by token: it yields the finished answer once
        (result,) = await self.generate([prompt], [params], deadline)
        yield result.text, result.finish, result.token_count

    async def check_health(self) -> bool:
        return True

    async def close(self) -> None:
        self._model = None


class _Deadline:
    """Stops generation of the whole chunk once the batch deadline has passed or the
    request was cancelled."""

    def __init__(self, deadline: float | None, stop: threading.Event) -> None:
        self.deadline = deadline
        self.stop = stop

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        late = self.stop.is_set() or (
            self.deadline is not None and time.monotonic() >= self.deadline
        )
        return torch.full((input_ids.shape[0],), late, dtype=torch.bool, device=input_ids.device)
