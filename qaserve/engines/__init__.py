"""Engine choice: `ENGINE=vllm|transformers`, or `auto` (vLLM, falling back to transformers)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qaserve.engines.base import Engine, EngineInfo, GenParams, GenResult
from qaserve.engines.hf import HfEngine
from qaserve.engines.vllm import VllmEngine

if TYPE_CHECKING:
    from qaserve.settings import Settings

__all__ = ["Engine", "EngineInfo", "GenParams", "GenResult", "load_engine", "stop_token_ids"]
log = logging.getLogger(__name__)
STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")


def stop_token_ids(tokenizer: Any) -> list[int]:
    """Ids of Qwen's end-of-turn tokens present in this tokenizer, plus its eos."""
    ids = [tokenizer.convert_tokens_to_ids(t) for t in STOP_TOKENS]
    ids.append(tokenizer.eos_token_id)
    unk = tokenizer.unk_token_id
    return sorted({i for i in ids if isinstance(i, int) and i != unk})


def load_engine(settings: Settings, model_dir: Path, tokenizer: Any) -> Engine:
    """Start the engine `settings.engine` names; `auto` falls back to transformers when vLLM
    cannot start, and says so loudly: an ERROR line and `/info` (`engine_args.fallback`)."""
    stops = stop_token_ids(tokenizer)
    failure = None
    if settings.engine in ("auto", "vllm"):
        try:
            return VllmEngine.load(settings, model_dir, stops, tokenizer)
        except Exception as exc:
            if settings.engine == "vllm":
                raise
            failure = f"vLLM did not start: {type(exc).__name__}: {exc}"

    engine = HfEngine.load(settings, model_dir, tokenizer, stops)
    if failure:
        engine.info.details["fallback"] = failure
        log.error(
            "%s. FALLING BACK to the transformers engine on %s: much slower. Set ENGINE=vllm "
            "to make this an error, or ENGINE=transformers to choose it.",
            failure,
            engine.info.details.get("device", "?"),
        )
    return engine
