"""The predecessor toolkit's variables (issue 20): each one sets the setting of the same meaning,
or gets one warning naming what replaced it; comma lists; typos named; the preset; MetaX.

    pytest tests/test_predecessor_settings.py -q
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qaserve.answering.budget import BudgetRules, budget_for
from qaserve.answering.cleanup import shorten
from qaserve.engines.vllm import speculative_config
from qaserve.modeltools.files import fit_draft
from qaserve.predecessor import (
    GONE,
    PREDECESSOR_SYSTEM_PROMPT,
    RENAMED,
    environment_warnings,
    known_names,
    metax_present,
)
from qaserve.settings import Settings, SettingsError, environ, load_settings

# the predecessor's env_force.sh values (PREDECESSOR.md section 3), MODEL_ID aside
PREDECESSOR_ENV = {
    "MAX_NEW_TOKENS": "512",
    "DISABLE_TOKEN_ROUTING": "1",
    "MAX_NEW_TOKENS_CODE": "192",
    "MAX_NEW_TOKENS_CODE_HARD": "192",
    "MAX_NEW_TOKENS_CODE_SOFT": "96",
    "BATCH_MODE": "1",
    "BATCH_CONCURRENCY": "512",
    "GPU_MEMORY_UTILIZATION": "0.97",
    "MAX_MODEL_LEN": "8192",
    "VLLM_MAX_NUM_SEQS": "",
    "VLLM_MAX_NUM_BATCHED_TOKENS": "",
    "WARMUP_NUM_SAMPLES": "7000",
    "WARMUP_NUM_SAMPLES_CAP": "7000",
    "WARMUP_REPEAT": "1",
    "VLLM_LOAD_FORMAT": "auto",
    "USE_VLLM": "true",
    "TEMPERATURE": "0.0",
    "TOP_P": "1.0",
    "TOP_K": "1",
    "REPETITION_PENALTY": "1.05",
    "FREQUENCY_PENALTY": "0.1",
    "OUTPUT_TRIM_EXAMPLES": "1",
    "OUTPUT_MAX_SENTENCES": "6",
    "ENABLE_PREFIX_CACHING": "1",
    "VLLM_ENFORCE_EAGER": "0",
    "DTYPE": "float16",
    "ENABLE_SPECULATIVE_DECODING": "0",
    "SPEC_METHOD": "ngram",
    "SPEC_NUM_SPECULATIVE_TOKENS": "6",
    "SPEC_NGRAM_LOOKUP_MAX": "8",
    "SPEC_NGRAM_LOOKUP_MIN": "1",
    "STOP_STRINGS": "<|im_end|>,<|endoftext|>",
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    known = known_names(Settings.model_fields)
    for name in list(os.environ):
        if name.upper() in known or name.lower() in Settings.model_fields:
            monkeypatch.delenv(name)


def start_warnings(env: dict[str, str] | None = None) -> list[str]:
    """What the server warns at start, for this process's environment or `env`."""
    return environment_warnings(environ() if env is None else env, Settings.model_fields)


def _env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_env_force_values_take_effect(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, **PREDECESSOR_ENV)
    s = load_settings()
    assert s.stop_strings == ["<|im_end|>", "<|endoftext|>"]
    assert s.token_budgets is False and s.max_new_tokens == 512  # routing off: all get 512
    assert (s.long_max_new_tokens, s.code_max_new_tokens) == (192, 96)
    assert s.spec_num_tokens == 6 and (s.spec_ngram_lookup_max, s.spec_ngram_lookup_min) == (8, 1)
    assert s.max_num_seqs == 512  # VLLM_MAX_NUM_SEQS="" means unset, as there
    assert (s.output_trim_examples, s.output_max_sentences) == (True, 6)
    assert (s.top_k, s.repetition_penalty, s.dtype) == (1, 1.05, "float16")
    assert s.warmup_num_samples == 7000 and s.engine == "auto"
    assert "load_format" not in s.engine_extra_args  # `auto` is vLLM's own default
    warnings = start_warnings()
    assert warnings == [
        "MAX_NEW_TOKENS_CODE_HARD=192 has no effect here: there is no separate hard-code "
        "route; code questions get MAX_NEW_TOKENS_CODE_SOFT=96",
        f"BATCH_CONCURRENCY=512 has no effect here: {GONE['BATCH_CONCURRENCY']}",
    ]


@pytest.mark.parametrize("name", sorted(RENAMED))
def test_renamed_variables_set_our_field(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    value = "float16" if name == "KV_CACHE_DTYPE" else "model/d" if "DIR" in name else "7"
    value = "1" if name == "VLLM_ENFORCE_EAGER" else value
    monkeypatch.setenv(name, value)
    field = RENAMED[name]
    expected = Settings.model_fields[field].annotation
    got = getattr(load_settings(), field)
    assert str(got) in (value, "True"), (name, field, got, expected)
    assert start_warnings() == []


def test_our_name_wins_and_the_conflict_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, VLLM_MAX_NUM_SEQS="1024", MAX_NUM_SEQS="64")
    assert load_settings().max_num_seqs == 64
    assert start_warnings() == ["VLLM_MAX_NUM_SEQS=1024 ignored: MAX_NUM_SEQS=64 is set and wins"]


def test_flags_beat_predecessor_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_MAX_NUM_SEQS", "1024")
    assert load_settings(max_num_seqs="8").max_num_seqs == 8


def test_max_new_tokens_with_routing_is_the_short_budget_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the predecessor's image values: 64 short, 192 long ("code"), 96 code ("soft")
    _env(
        monkeypatch,
        MAX_NEW_TOKENS="64",
        MAX_NEW_TOKENS_CODE="192",
        MAX_NEW_TOKENS_CODE_SOFT="96",
        MAX_NEW_TOKENS_CODE_HARD="96",
    )
    s = load_settings()
    assert (s.short_max_new_tokens, s.long_max_new_tokens, s.code_max_new_tokens) == (64, 192, 96)
    assert s.max_new_tokens == 192
    rules = BudgetRules.from_settings(s)
    assert budget_for("什么是warp？", rules) == 64
    assert budget_for("请写出CUDA向量加法的代码", rules) == 96
    (warning,) = start_warnings()
    assert warning.startswith("MAX_NEW_TOKENS=64 is read as the predecessor meant it")


def test_max_new_tokens_alone_keeps_our_meaning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_NEW_TOKENS", "64")
    s = load_settings()
    assert (s.max_new_tokens, s.short_max_new_tokens) == (64, 128)
    assert start_warnings() == []


def test_translated_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, FORCE_VLLM="1", FAST_CHAT_TEMPLATE="1", LONG_ANSWER_ENABLE_DEFAULT="0")
    s = load_settings()
    assert (s.engine, s.chat_template, s.long_pattern) == ("vllm", "chatml", "")
    monkeypatch.delenv("FORCE_VLLM")
    monkeypatch.setenv("USE_VLLM", "false")
    assert load_settings().engine == "transformers"


def test_engine_passthrough_merges_with_extra_args(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(
        monkeypatch,
        VLLM_LOAD_FORMAT="awq",
        ENABLE_CHUNKED_PREFILL="0",
        VLLM_COMPILATION_CONFIG='{"level": 3}',
        ENGINE_EXTRA_ARGS='{"load_format": "dummy"}',
    )
    assert load_settings().engine_extra_args == {
        "load_format": "dummy",  # ours wins
        "enable_chunked_prefill": False,
        "compilation_config": {"level": 3},
    }


def test_keyword_lists_extend_the_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(
        monkeypatch,
        LONG_ANSWER_KEYWORDS="SpMV, im2col",
        CODE_QUESTION_KEYWORDS="kernel<<<",
        HARD_CODE_QUESTION_KEYWORDS="#include",
    )
    s = load_settings()
    assert s.code_question_keywords == ["kernel<<<", "#include"]
    rules = BudgetRules.from_settings(s)
    assert budget_for("spmv 的CSR格式", rules) == s.long_max_new_tokens
    assert budget_for("#include <cuda.h> 有什么用", rules) == s.code_max_new_tokens
    assert budget_for("什么是warp", rules) == s.short_max_new_tokens


def test_stop_strings_json_still_works_and_commas_split(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOP_STRINGS", '["a,b"]')
    assert load_settings().stop_strings == ["a,b"]
    monkeypatch.setenv("STOP_STRINGS", "###, END ,")
    assert load_settings().stop_strings == ["###", "END"]
    monkeypatch.setenv("STOP_STRINGS", "[oops")
    with pytest.raises(SettingsError, match="STOP_STRINGS"):
        load_settings()


def test_gone_variables_warn_once_each(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, SERVE_VLLM_ENGINE="v1", HARD_CODE_MIN_HITS="1", LONG_ANSWER_MIN_HITS="2")
    warnings = start_warnings()
    assert len(warnings) == 2
    assert warnings[0].startswith("SERVE_VLLM_ENGINE=v1 has no effect here")
    assert warnings[1].startswith("LONG_ANSWER_MIN_HITS=2 has no effect here")


@pytest.mark.parametrize(
    ("typo", "meant"),
    [
        ("MAX_NUM_SEQ", "MAX_NUM_SEQS"),
        ("VLLM_MAX_NUM_SEQ", "VLLM_MAX_NUM_SEQS"),
        ("STOP_STRING", "STOP_STRINGS"),
        ("BATCHMODE", "BATCH_MODE"),
        ("SPEC_NUM_SPECULATIVE_TOKEN", "SPEC_NUM_SPECULATIVE_TOKENS"),
    ],
)
def test_a_near_miss_names_the_closest_name(
    monkeypatch: pytest.MonkeyPatch, typo: str, meant: str
) -> None:
    monkeypatch.setenv(typo, "1")
    assert start_warnings() == [f"{typo} is not a setting: did you mean {meant}?"]


def test_unrelated_variables_are_not_near_misses() -> None:
    env = {n: "x" for n in ("PATH", "HOME", "HOSTNAME", "LANG", "TERM", "PYTHONPATH", "SHELL")}
    env |= {"VIRTUAL_ENV": "x", "LOGNAME": "x", "HF_HOME": "x", "CUDA_HOME": "x", "USER": "x"}
    assert start_warnings(env) == []


def test_spec_method_draft_and_ngram_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(
        monkeypatch,
        ENABLE_SPECULATIVE_DECODING="1",
        SPEC_METHOD="draft",
        SPEC_DRAFT_MODEL_DIR="model/draft",
    )
    config = speculative_config(load_settings())
    assert config is not None
    assert config["method"] == "draft_model" and config["model"] == "model/draft"
    _env(monkeypatch, SPEC_METHOD="ngram", SPEC_NGRAM_LOOKUP_MAX="8", SPEC_NGRAM_LOOKUP_MIN="1")
    config = speculative_config(load_settings())
    assert config is not None
    assert (config["prompt_lookup_max"], config["prompt_lookup_min"]) == (8, 1)


def test_preset_predecessor_sets_defaults_that_variables_still_beat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PRESET", "predecessor")
    s = load_settings()
    assert s.system_prompt == PREDECESSOR_SYSTEM_PROMPT
    assert (s.short_max_new_tokens, s.long_max_new_tokens, s.code_max_new_tokens) == (64, 192, 96)
    assert (s.top_k, s.repetition_penalty, s.frequency_penalty) == (1, 1.05, 0.1)
    assert (s.max_model_len, s.max_num_seqs, s.gpu_memory_utilization) == (1024, 1024, 0.97)
    monkeypatch.setenv("MAX_MODEL_LEN", "2048")
    assert load_settings().max_model_len == 2048
    assert load_settings(preset="none").max_model_len == 2048
    monkeypatch.delenv("PRESET")
    assert load_settings(preset="predecessor").top_k == 1  # --preset predecessor


def test_metax_nodes_set_its_memory_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DEVICE_DIR", str(tmp_path))
    assert not metax_present(tmp_path) and load_settings().gpu_memory_utilization == 0.9
    (tmp_path / "mxcd").touch()  # a stand-in device node
    assert metax_present(tmp_path) and load_settings().gpu_memory_utilization == 0.60
    monkeypatch.setenv("GPU_MEMORY_UTILIZATION", "0.8")
    assert load_settings().gpu_memory_utilization == 0.8


def test_shorten_trims_examples_and_caps_sentences() -> None:
    text = "共享内存是块内线程共享的片上存储。延迟低。例如：矩阵乘法分块。还有更多。"
    assert shorten(text, True, 0) == "共享内存是块内线程共享的片上存储。延迟低。"
    assert shorten(text, False, 1) == "共享内存是块内线程共享的片上存储。"
    assert shorten("第一行\n第二行\n第三行", False, 2) == "第一行\n第二行"  # newlines kept
    assert shorten("例如：只有例子。", True, 0) == "例如：只有例子。"
    code = "```c\nint a;\n```\n说明。再说明。"
    assert shorten(code, True, 1) == code


def test_draft_model_by_id(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _env(
        monkeypatch,
        ENABLE_SPECULATIVE_DECODING="1",
        SPEC_METHOD="draft",
        SPEC_DRAFT_MODEL_ID="qa/draft",
        MODEL_CACHE_DIR=str(tmp_path),
    )
    assert speculative_config(fit_draft(load_settings())) is None  # not downloaded: none
    draft = tmp_path / "qa" / "draft"
    draft.mkdir(parents=True)
    (draft / "config.json").write_text("{}")
    (draft / "model.safetensors").write_bytes(b"")
    config = speculative_config(fit_draft(load_settings()))
    assert config is not None and Path(config["model"]).resolve() == draft.resolve()
