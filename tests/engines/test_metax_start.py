"""MetaX and vLLM-version differences at engine start (issue 20): device detection from stand-in
device nodes, the vendor environment, and the start retried on the engine errors the
predecessor knew (fake engine classes raise them; no vLLM needed).

    pytest tests/engines/test_metax_start.py -q
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qaserve.engines.vllm_start import prepare_vendor_env, start_with_retries
from qaserve.predecessor import metax_present


class Args:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


class FakeEngine:
    """Raises `errors` in turn (each a function of the kwargs, or None: start), then starts."""

    calls: list[dict[str, Any]] = []
    errors: list[Any] = []

    @classmethod
    def from_engine_args(cls, args: Args) -> dict[str, Any]:
        cls.calls.append(dict(args.kwargs))
        error = cls.errors.pop(0)(args.kwargs) if cls.errors else None
        if error is not None:
            raise error
        return args.kwargs


def start(errors: list[Any], metax: bool = False, **kwargs: Any) -> tuple[dict, list[dict]]:
    FakeEngine.calls, FakeEngine.errors = [], list(errors)
    engine = start_with_retries(FakeEngine, Args, {"max_model_len": 4096, **kwargs}, metax)
    return engine, FakeEngine.calls


def test_metax_is_found_by_its_device_nodes(tmp_path: Path) -> None:
    assert not metax_present(tmp_path)
    for node in ("mxcd", "mxc0", "mxc"):
        (tmp_path / node).touch()
        assert metax_present(tmp_path)
        (tmp_path / node).unlink()


def test_vendor_env(tmp_path: Path) -> None:
    env = {"CUDA_VISIBLE_DEVICES": "", "NVIDIA_VISIBLE_DEVICES": " ", "VLLM_DEVICE": "cuda"}
    prepare_vendor_env(env, metax=True)
    assert env == {"VLLM_DEVICE": "cuda", "VLLM_USE_V1": "1"}
    env = {"VLLM_USE_V1": "0"}
    prepare_vendor_env(env, metax=True)
    assert env == {"VLLM_USE_V1": "0"}  # a user's own value stays


def test_compilation_config_other_spelling() -> None:
    def refuse_dict(kw: dict) -> Exception | None:
        bad = isinstance(kw["compilation_config"], dict)
        return ValueError("compilation_config must be a JSON string") if bad else None

    engine, calls = start([refuse_dict, refuse_dict], compilation_config={"level": 3})
    assert engine["compilation_config"] == json.dumps({"level": 3}) and len(calls) == 2
    engine, _ = start([lambda kw: ValueError("invalid JSON in compilation config")],
                      compilation_config="{'level': 3}")  # fmt: skip
    assert engine["compilation_config"] == {"level": 3}  # a Python literal, as a dict


def test_unknown_load_format_is_dropped() -> None:
    engine, _ = start([lambda kw: ValueError("'awq' is not a valid LoadFormat")], load_format="awq")
    assert "load_format" not in engine


def test_metax_retries_eager_then_the_estimated_length() -> None:
    cause = ValueError("... the estimated maximum model length is 38400 ...")

    def kv_error(kw: dict) -> Exception:
        error = RuntimeError("Engine core initialization failed")
        error.__cause__ = cause
        return error

    engine, calls = start([kv_error, kv_error], metax=True, max_model_len=65536)
    assert [c.get("enforce_eager") for c in calls] == [None, True, True]
    assert engine["max_model_len"] == 38400 and engine["enforce_eager"] is True


def test_unknown_errors_are_not_retried() -> None:
    with pytest.raises(RuntimeError, match="out of memory"):
        start([lambda kw: RuntimeError("CUDA out of memory")])
    assert len(FakeEngine.calls) == 1
    with pytest.raises(RuntimeError, match="still no"):  # every fix tried once, then the error
        start([lambda kw: RuntimeError("still no")] * 9, metax=True)
    assert len(FakeEngine.calls) == 2
