"""`load_engine`: `auto` falls back to transformers (one warning line) when vLLM fails; our vLLM
engine arguments all exist in the installed vLLM.

    pytest tests/engines/test_engine_choice.py -q
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path
from typing import Any

import pytest

from qaserve.engines import load_engine
from qaserve.engines.hf import HfEngine
from qaserve.settings import Settings, load_settings

pytestmark = pytest.mark.engine


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture
def broken_vllm(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    from qaserve.engines.vllm import VllmEngine

    calls: list[Any] = []

    def fail(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        raise RuntimeError("no usable vLLM here")

    monkeypatch.setattr(VllmEngine, "load", classmethod(lambda cls, *a, **k: fail(*a, **k)))
    return calls


def test_auto_falls_back_to_transformers_with_one_error_line(
    tiny_model_dir: Path,
    tokenizer: Any,
    broken_vllm: list[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = load_settings(model_dir=tiny_model_dir, engine="auto", dtype="float32")
    with caplog.at_level(logging.INFO, logger="qaserve"):
        engine = load_engine(settings, tiny_model_dir, tokenizer)
    try:
        assert len(broken_vllm) == 1
        assert isinstance(engine, HfEngine)
        assert engine.info.name == "transformers"
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert warnings[0].levelno == logging.ERROR  # a fallback is never quiet (issue 17)
        message = warnings[0].getMessage()
        assert "\n" not in message
        assert "RuntimeError" in message and "no usable vLLM here" in message
        assert "transformers" in message and "on cpu" in message  # the device it fell back to
        assert "no usable vLLM here" in engine.info.details["fallback"]  # shown in /info
    finally:
        asyncio.run(engine.close())


def test_vllm_failure_is_not_hidden_when_vllm_was_asked_for(
    tiny_model_dir: Path, tokenizer: Any, broken_vllm: list[Any]
) -> None:
    settings = load_settings(model_dir=tiny_model_dir, engine="vllm")
    with pytest.raises(RuntimeError, match="no usable vLLM"):
        load_engine(settings, tiny_model_dir, tokenizer)


def test_transformers_engine_skips_vllm(
    tiny_model_dir: Path, tokenizer: Any, broken_vllm: list[Any]
) -> None:
    settings = load_settings(model_dir=tiny_model_dir, engine="transformers")
    engine = load_engine(settings, tiny_model_dir, tokenizer)
    assert isinstance(engine, HfEngine)
    assert not broken_vllm
    assert asyncio.run(engine.check_health()) is True


def test_every_engine_argument_we_send_exists_in_this_vllm(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from vllm import AsyncEngineArgs

    from qaserve.engines.vllm import engine_kwargs

    known = {f.name for f in dataclasses.fields(AsyncEngineArgs)}
    settings = load_settings(
        vllm_quantization="fp8",
        max_num_batched_tokens=1024,
        async_scheduling=True,
        enable_speculative_decoding=True,
    )
    with caplog.at_level(logging.INFO, logger="qaserve.engines.vllm"):
        kwargs = engine_kwargs(settings, Path("/m"), known)
    assert "has no engine option" not in caplog.text  # only the request-logging switch differs
    for name in ("quantization", "max_num_batched_tokens", "async_scheduling"):
        assert name in kwargs
    assert kwargs["speculative_config"]["method"] == "ngram"
    assert ("disable_log_requests" in kwargs) != ("enable_log_requests" in kwargs)
