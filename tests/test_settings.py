"""Settings: defaults, the environment variable names users type, errors naming the variable,
secret masking, vLLM engine arguments, and the `serve.py` command line (CLI > env > default).

    pytest tests/test_settings.py -q
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from qaserve.engines.vllm import engine_kwargs, speculative_config
from qaserve.server.cli import settings_from_args, settings_parser
from qaserve.settings import Settings, SettingsError, load_settings

TOKEN = "very-secret-token-91"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: the developer's shell must not leak in (matching is
    case-insensitive, as Settings' is)."""
    for name in list(os.environ):
        if name.lower() in Settings.model_fields:
            monkeypatch.delenv(name)


def test_defaults() -> None:
    s = load_settings()
    assert (s.host, s.port, s.batch_mode) == ("0.0.0.0", 8000, True)
    assert s.model_dir is None
    assert s.model_id == "Qwen/Qwen2.5-0.5B-Instruct"
    assert s.engine == "auto"
    assert s.max_new_tokens == 512
    assert s.gpu_memory_utilization == 0.9
    assert s.max_model_len == 4096
    assert s.enable_prefix_caching is True
    assert s.vllm_quantization is None
    assert s.vllm_kv_cache_dtype == "auto"
    assert s.enable_speculative_decoding is False
    assert s.spec_method == "ngram"
    assert s.admin_token is None
    assert s.temperature == 0.0
    assert s.engine_extra_args == {} and s.stop_strings == []
    assert s.non_defaults() == {}


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("MODEL_DIR", "/models/my-qwen", "model_dir", Path("/models/my-qwen")),
        ("MODEL_ID", "Qwen/Qwen3-4B", "model_id", "Qwen/Qwen3-4B"),
        ("BATCH_MODE", "0", "batch_mode", False),
        ("BATCH_MODE", "false", "batch_mode", False),
        ("BATCH_MODE", "true", "batch_mode", True),
        ("MAX_NEW_TOKENS", "256", "max_new_tokens", 256),
        ("GPU_MEMORY_UTILIZATION", "0.55", "gpu_memory_utilization", 0.55),
        ("MAX_MODEL_LEN", "1024", "max_model_len", 1024),
        ("ENABLE_PREFIX_CACHING", "0", "enable_prefix_caching", False),
        ("VLLM_QUANTIZATION", "fp8", "vllm_quantization", "fp8"),
        ("VLLM_KV_CACHE_DTYPE", "fp8", "vllm_kv_cache_dtype", "fp8"),
        ("ENABLE_SPECULATIVE_DECODING", "1", "enable_speculative_decoding", True),
        ("SPEC_METHOD", "eagle", "spec_method", "eagle"),
        ("PORT", "8080", "port", 8080),
        ("ENGINE", "transformers", "engine", "transformers"),
        ("STOP_STRINGS", '["###", "问题："]', "stop_strings", ["###", "问题："]),
        ("ENGINE_EXTRA_ARGS", '{"block_size": 32}', "engine_extra_args", {"block_size": 32}),
        ("max_new_tokens", "77", "max_new_tokens", 77),  # lower case works too
    ],
)
def test_env_var_is_read(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str, expected: Any
) -> None:
    monkeypatch.setenv(variable, value)
    assert getattr(load_settings(), field) == expected


def test_overrides_beat_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_NEW_TOKENS", "100")
    assert load_settings(max_new_tokens=200).max_new_tokens == 200


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GPU_MEMORY_UTILIZATION", "2"),
        ("GPU_MEMORY_UTILIZATION", "0"),
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("ENGINE", "foo"),
        ("ENGINE_EXTRA_ARGS", "[1]"),
        ("MAX_MODEL_LEN", "10"),
        ("BATCH_MODE", "maybe"),
        ("LOG_LEVEL", "LOUD"),
        ("TEMPERATURE", "-1"),
    ],
)
def test_invalid_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_every_bad_variable_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "abc")
    monkeypatch.setenv("ENGINE", "foo")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "PORT" in str(caught.value) and "ENGINE" in str(caught.value)


@pytest.mark.parametrize("variable", ["CODE_PATTERN", "LONG_PATTERN"])
def test_invalid_regex_names_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "(")
    with pytest.raises(SettingsError, match=variable):
        load_settings()


@pytest.mark.parametrize(
    ("variable", "value"), [("ENGINE_EXTRA_ARGS", "{bad"), ("STOP_STRINGS", "[x")]
)
def test_invalid_json_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_admin_token_is_masked_everywhere() -> None:
    s = load_settings(admin_token=TOKEN, max_new_tokens=64)
    assert s.non_defaults() == {"admin_token": "***", "max_new_tokens": 64}
    shown = s.shown()
    assert shown["admin_token"] == "***"
    assert set(shown) == set(Settings.model_fields)
    assert TOKEN not in repr(s.non_defaults()) + repr(shown) + repr(s)
    assert s.admin_token is not None and s.admin_token.get_secret_value() == TOKEN


def test_shown_makes_paths_strings() -> None:
    s = load_settings(model_dir="/models/x")
    assert s.shown()["model_dir"] == "/models/x"
    assert s.non_defaults() == {"model_dir": "/models/x"}
    assert load_settings().shown()["admin_token"] is None


# --- vLLM engine arguments ----------------------------------------------------------------

KNOWN = {
    "model",
    "tokenizer",
    "dtype",
    "max_model_len",
    "gpu_memory_utilization",
    "enable_prefix_caching",
    "quantization",
    "kv_cache_dtype",
    "speculative_config",
    "block_size",
}


def test_engine_kwargs_follow_settings_and_drop_unknown_names(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("GPU_MEMORY_UTILIZATION", "0.5")
    monkeypatch.setenv("VLLM_QUANTIZATION", "fp8")
    monkeypatch.setenv("VLLM_KV_CACHE_DTYPE", "fp8")
    monkeypatch.setenv("ENABLE_PREFIX_CACHING", "0")
    monkeypatch.setenv("ENGINE_EXTRA_ARGS", '{"block_size": 32, "no_such_option": 1}')
    with caplog.at_level(logging.INFO, logger="qaserve.engines.vllm"):
        kwargs = engine_kwargs(load_settings(), Path("/m/q"), KNOWN)
    assert set(kwargs) <= KNOWN
    assert kwargs["model"] == kwargs["tokenizer"] == "/m/q"
    assert kwargs["gpu_memory_utilization"] == 0.5
    assert kwargs["quantization"] == "fp8"
    assert kwargs["kv_cache_dtype"] == "fp8"
    assert kwargs["enable_prefix_caching"] is False
    assert kwargs["block_size"] == 32
    assert "no_such_option" not in kwargs
    assert "speculative_config" not in kwargs  # off by default
    assert "no_such_option" in caplog.text


@pytest.mark.parametrize(
    ("key", "variable"), [("max_model_len", "MAX_MODEL_LEN"), ("dtype", "DTYPE")]
)
def test_extra_args_cannot_contradict_a_setting(
    monkeypatch: pytest.MonkeyPatch, key: str, variable: str
) -> None:
    # the engine would run with one value while the server plans with another (issue 18.5)
    monkeypatch.setenv("ENGINE_EXTRA_ARGS", json.dumps({key: 1024}))
    with pytest.raises(SettingsError, match=f"ENGINE_EXTRA_ARGS: .*{key} \\(set {variable}\\)"):
        load_settings()


def test_unset_optional_args_are_left_to_vllm() -> None:
    kwargs = engine_kwargs(load_settings(), Path("/m"), KNOWN | {"async_scheduling"})
    assert "quantization" not in kwargs and "async_scheduling" not in kwargs


def test_speculative_config_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENABLE_SPECULATIVE_DECODING", "1")
    kwargs = engine_kwargs(load_settings(), Path("/m"), KNOWN)
    assert kwargs["speculative_config"] == {
        "method": "ngram",
        "num_speculative_tokens": 4,
        "prompt_lookup_max": 4,
        "prompt_lookup_min": 2,
    }


def test_speculative_draft_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENABLE_SPECULATIVE_DECODING", "true")
    monkeypatch.setenv("SPEC_METHOD", "draft_model")
    monkeypatch.setenv("SPEC_DRAFT_MODEL", "/models/draft")
    monkeypatch.setenv("SPEC_NUM_TOKENS", "3")
    assert speculative_config(load_settings()) == {
        "method": "draft_model",
        "num_speculative_tokens": 3,
        "model": "/models/draft",
    }


# --- the command line ---------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--max-model-len", "--max_model_len"])
def test_cli_flag_spellings(flag: str) -> None:
    args = settings_parser("test").parse_args([flag, "1024"])
    assert settings_from_args(args).max_model_len == 1024


def test_cli_beats_env_beats_default(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = settings_parser("test")
    monkeypatch.setenv("MAX_MODEL_LEN", "2048")
    monkeypatch.setenv("MAX_NEW_TOKENS", "99")
    s = settings_from_args(parser.parse_args(["--max-model-len", "1024"]))
    assert s.max_model_len == 1024  # CLI over env
    assert s.max_new_tokens == 99  # env over default
    assert s.port == 8000  # default


def test_cli_types_and_json() -> None:
    argv = ["--batch-mode", "0", "--stop-strings", '["###"]', "--port", "9000"]
    s = settings_from_args(settings_parser("test").parse_args(argv))
    assert (s.batch_mode, s.stop_strings, s.port) == (False, ["###"], 9000)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--enforce-eager"], True),  # a switch, as vLLM's flags are
        (["--no-enforce-eager"], False),
        (["--enforce-eager", "0"], False),  # an explicit value still works
        (["--enforce_eager", "1"], True),
        ([], False),
    ],
)
def test_boolean_flags_are_switches(argv: list[str], expected: bool) -> None:
    assert settings_from_args(settings_parser("test").parse_args(argv)).enforce_eager is expected


def test_vllm_flag_spellings() -> None:
    argv = ["--quantization", "fp8", "--kv-cache-dtype", "fp8", "--no-async-scheduling"]
    s = settings_from_args(settings_parser("test").parse_args(argv))
    assert (s.vllm_quantization, s.vllm_kv_cache_dtype, s.async_scheduling) == ("fp8", "fp8", False)


def test_help_shows_switches() -> None:
    text = settings_parser("test").format_help()
    assert "--enforce-eager [BOOL]" in text and "--no-enforce-eager" in text


def test_cli_invalid_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="PORT"):
        settings_from_args(settings_parser("test").parse_args(["--port", "abc"]))


def test_cli_string_that_looks_like_json() -> None:
    args = settings_parser("test").parse_args(["--code-pattern", "[Cc]ode|实现"])
    assert settings_from_args(args).code_pattern == "[Cc]ode|实现"


def test_secrets_have_no_command_line_flag() -> None:
    help_text = settings_parser("test").format_help()
    assert "--admin-token" not in help_text
    assert "--modelscope-api-token" not in help_text
    assert "--max-model-len" in help_text
