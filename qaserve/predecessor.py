"""The predecessor toolkit's variables (issue 20; ../shared/PREDECESSOR.md): what each one sets
here, a warning for each not honoured as it was and for probable typos, its preset, and MetaX.

    python -c "from qaserve.predecessor import *; from qaserve.settings import Settings; \
print(environment_warnings({'VLLM_MAX_NUM_SEQ': '8'}, Settings.model_fields))"

Its users source their old env files: every serving variable it read either sets the setting of
the same meaning here, or gets one WARNING at start naming what replaced it. Nothing here reads
the environment or imports our modules: `qaserve/settings.py` passes in the variables and its
fields (`Settings.model_fields`).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

PREDECESSOR_SYSTEM_PROMPT = (
    "你是考试答题模型，目标是用尽量少的输出得到尽量高的ROUGE-L。只输出答案正文：关键术语和结论；"
    "不写推理、步骤说明、解释或客套话，也不要写“思考完成”之类的话。尽量沿用教材原有的措辞和语序，"
    "用3到6个短句或短语覆盖定义、参数、公式、步骤和术语；不举例，不介绍背景，不重复。"
    "代码题只给最短的核心代码或伪代码骨架，不用Markdown代码块。"
)
# PRESET=predecessor: its image's serving values (its Dockerfile; PREDECESSOR.md sections 2-3)
PRESETS: dict[str, dict[str, Any]] = {
    "predecessor": {
        "system_prompt": PREDECESSOR_SYSTEM_PROMPT,
        "chat_template": "chatml",
        "dtype": "float16",
        "temperature": 0.0,
        "top_p": 1.0,
        "top_k": 1,
        "repetition_penalty": 1.05,
        "frequency_penalty": 0.1,
        "max_new_tokens": 192,
        "short_max_new_tokens": 64,
        "long_max_new_tokens": 192,
        "code_max_new_tokens": 96,
        "code_pattern": r"代码|伪代码|kernel<<<|global void|#include|import |def ",
        "long_pattern": r"算子|spmv|convnets|im2col|gemm|tensor cores|triton|tilelang",
        "output_trim_examples": True,
        "output_max_sentences": 6,
        "gpu_memory_utilization": 0.97,
        "max_model_len": 1024,
        "max_num_seqs": 1024,
        "max_num_batched_tokens": 131072,
        "enable_prefix_caching": True,
    },
}

# predecessor name -> our field, same meaning
RENAMED = {
    "VLLM_MAX_NUM_SEQS": "max_num_seqs",
    "VLLM_MAX_NUM_BATCHED_TOKENS": "max_num_batched_tokens",
    "KV_CACHE_DTYPE": "vllm_kv_cache_dtype",
    "VLLM_ENFORCE_EAGER": "enforce_eager",
    "SPEC_NUM_SPECULATIVE_TOKENS": "spec_num_tokens",
    "SPEC_DRAFT_MODEL_DIR": "spec_draft_model",
    "MAX_NEW_TOKENS_CODE": "long_max_new_tokens",  # its "long answer" route
    "MAX_NEW_TOKENS_CODE_SOFT": "code_max_new_tokens",  # its "code" route
}
# predecessor name -> the vLLM engine argument it passed (feature-detected like ours)
ENGINE_PASSTHROUGH = {
    "VLLM_LOAD_FORMAT": "load_format",
    "ENABLE_CHUNKED_PREFILL": "enable_chunked_prefill",
    "VLLM_COMPILATION_CONFIG": "compilation_config",
    "VLLM_TOKENIZER_POOL_SIZE": "tokenizer_pool_size",
    "VLLM_TOKENIZER_POOL_TYPE": "tokenizer_pool_type",
}
# predecessor names read with a translation (see predecessor_values)
TRANSLATED = {
    "DISABLE_TOKEN_ROUTING": "TOKEN_BUDGETS=0",
    "USE_VLLM": "ENGINE (false: transformers, else auto)",
    "FORCE_VLLM": "ENGINE=vllm (no fallback)",
    "FAST_CHAT_TEMPLATE": "CHAT_TEMPLATE=chatml (0: auto)",
    "LONG_ANSWER_ENABLE_DEFAULT": "0: LONG_PATTERN empty (only LONG_ANSWER_KEYWORDS)",
    "HARD_CODE_QUESTION_KEYWORDS": "CODE_QUESTION_KEYWORDS (added)",
    "MAX_NEW_TOKENS_CODE_HARD": "CODE_MAX_NEW_TOKENS (when MAX_NEW_TOKENS_CODE_SOFT is unset)",
    "WARMUP_NUM_SAMPLES_CAP": "caps WARMUP_NUM_SAMPLES",
    "TRANSFORMERS_DTYPE": "DTYPE (one dtype for both engines)",
}
# predecessor name -> why it is gone and what replaced it; warned when set (and not honoured)
GONE = {
    "VLLM_BATCH_USE_LLM": "every request shares one async vLLM engine (no lock); "
    "ENGINE_REPLICAS sets how many engines",
    "SERVE_VLLM_ENGINE": "the installed vLLM's async engine is always used",
    "BATCH_CONCURRENCY": "a batch's items all go to the engine at once; MAX_NUM_SEQS bounds them",
    "HARD_CODE_MIN_HITS": "one match of CODE_PATTERN or CODE_QUESTION_KEYWORDS decides",
    "LONG_ANSWER_MIN_HITS": "one match of LONG_PATTERN or LONG_ANSWER_KEYWORDS decides",
    "VLLM_DEVICE": "vLLM detects its platform itself",
    "VLLM_LOG_LEVEL": "set vLLM's own VLLM_LOGGING_LEVEL",
    "DEBUG_NET": "it did nothing in the predecessor either",
    "DEFAULT_MAX_MODEL_LEN": "MAX_MODEL_LEN defaults to the model's context; an engine start "
    "short of KV-cache room retries with the length vLLM estimates",
    "SAFE_MAX_MODEL_LEN": "an engine start short of KV-cache room retries with the length "
    "vLLM estimates",
    "SPEC_DRAFT_MAX_MODEL_LEN": "the draft model runs with MAX_MODEL_LEN",
    "SKIP_PIP_INSTALL": "run_model.sh installs only with --setup",
    "SKIP_MODEL_DOWNLOAD": "run_model.sh never downloads; download_model.py does",
}
_HONOURED_AS_IS = {  # values that ask for what happens here anyway: no warning
    "HARD_CODE_MIN_HITS": "1",
    "LONG_ANSWER_MIN_HITS": "1",
    "VLLM_DEVICE": "cuda",
    "SKIP_PIP_INSTALL": "1",
    "SKIP_MODEL_DOWNLOAD": "1",
    "DEBUG_NET": "0",
}
# names read by the tools (not the server), by vLLM or torch: known, so never a "near miss"
OTHER_KNOWN = set(
    [
        "AWQ_MODEL_DIR",
        "AWQ_OUTPUT_DIR",
        "AWQ_CALIB_JSONL",
        "BASE_MODEL",
        "BASE_REVISION",
        "ADAPTER_REPO_URL",
        "ADAPTER_REPO_REF",
        "MERGE_WORK_DIR",
        "MERGED_MODEL_DIR",
        "ADAPTER_CONFIG_JSON",
        "ADAPTER_CONFIG_PATH",
        "SPEC_DRAFT_MODEL_REVISION",
        "SPEC_DRAFT_OPTIONAL",
        "API_BASE_URL",
        "API_TIMEOUT",
        "WEBUI_PORT",
        "WEBUI_HOST",
        "WEBUI_SHARE",
        "WEBUI_AUTH",
        "TUNE_WEBHOOK_URL",
        "TUNE_WEBHOOK_KIND",
        "TUNE_FEISHU_SECRET",
        "TUNE_SMTP_HOST",
        "TUNE_SMTP_PORT",
        "TUNE_SMTP_USER",
        "TUNE_SMTP_PASS",
        "TUNE_SMTP_FROM",
        "TUNE_SMTP_TO",
        "TUNE_SMTP_SSL",
        "TUNE_SMTP_NO_STARTTLS",
        "TUNE_EMAIL_KINDS",
        "HEARTBEAT_TRIALS",
        "HEARTBEAT_INTERVAL_S",
        "TUNE_HEARTBEAT_INTERVAL_S",
        "TUNE_PORT_BUSY_RETRIES",
        "TUNE_PORT_BUSY_WAIT_S",
        "TUNE_PORT_BUSY_KILL",
        "NOTIFY_TRIAL_DONE",
        "NOTIFY_TRIAL_DONE_EVERY",
        "TUNE_SEARCH_SPACE_FILE",
        "SEARCH_SPACE_FILE",
        "VLLM_USE_V1",
        "VLLM_PLUGINS",
        "VLLM_LOGGING_LEVEL",
        "VLLM_USE_MODELSCOPE",
        "VLLM_CPU_KVCACHE_SPACE",
        "VLLM_HOST_IP",
        "VLLM_NO_USAGE_STATS",
        "CUDA_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES",
        "OMP_NUM_THREADS",
        "WHICH",
        "ENDPOINT",
        "ARTIFACTS_DIR",
    ]
)
METAX_NODES = ("mxcd", "mxc0", "mxc")
MIN_MATCH = 0.85  # difflib ratio above which an unknown name counts as a typo of a known one


Fields = Mapping[str, FieldInfo]  # the Settings class's model_fields


def metax_present(device_dir: Path) -> bool:
    """A MetaX accelerator is present: one of its device nodes is in `device_dir` (DEVICE_DIR;
    as the predecessor detected it)."""
    return any((device_dir / node).exists() for node in METAX_NODES)


def platform_defaults(device_dir: Path) -> dict[str, Any]:
    """Defaults that depend on the machine: MetaX leaves 40 % of its memory to the runtime."""
    return {"gpu_memory_utilization": 0.60} if metax_present(device_dir) else {}


def _given(env: Mapping[str, str], name: str) -> str | None:
    # the predecessor read a blank value as unset (its env_force.sh exports VLLM_MAX_NUM_SEQS="")
    value = env.get(name)
    return value.strip() if value is not None and value.strip() else None


def _truthy(value: str) -> bool:
    return value.lower() in {"1", "true", "yes", "on"}


def own_names(fields: Fields, field: str) -> list[str]:
    """The variables of one of our fields: its upper-cased name, or the names its alias lists."""
    alias = fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(c).upper() for c in alias.choices if isinstance(c, str)]
    return [str(alias or field).upper()]


def _our_values(env: Mapping[str, str], fields: Fields) -> dict[str, str]:
    """Our fields set by one of their own variables, and the value."""
    found = {f: next((env[n] for n in own_names(fields, f) if n in env), None) for f in fields}
    return {field: value for field, value in found.items() if value is not None}


def predecessor_values(env: Mapping[str, str], fields: Fields) -> dict[str, Any]:
    """Field values the predecessor's variables ask for (where ours are unset); `env` has
    upper-cased names."""
    return _translate(env, fields)[0]


def _translate(env: Mapping[str, str], fields: Fields) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {}
    notes: list[str] = []
    ours = _our_values(env, fields)

    def give(field: str, value: Any, source: str) -> None:
        mine = ours.get(field)
        if mine is None:
            values[field] = value
        elif mine.strip() != str(value):
            notes.append(f"{source} ignored: {own_names(fields, field)[0]}={mine} is set and wins")

    for name, field in RENAMED.items():
        if (value := _given(env, name)) is not None:
            give(field, value, f"{name}={value}")
    _translate_switches(env, give)
    _translate_budgets(env, ours, values, notes, give)
    _translate_lists(env, ours, values)
    _translate_engine_args(env, ours, values)
    samples, cap = _given(env, "WARMUP_NUM_SAMPLES"), _given(env, "WARMUP_NUM_SAMPLES_CAP")
    if cap is not None and cap.isdigit() and (samples is None or samples.isdigit()):
        # a cap on our own variable's value: applied even though WARMUP_NUM_SAMPLES is ours
        values["warmup_num_samples"] = str(max(1, min(int(samples or 12), int(cap), 8192)))
    if (value := _given(env, "TRANSFORMERS_DTYPE")) is not None:
        dtype = ours.get("dtype")
        if dtype is None and values.get("engine") == "transformers":
            values["dtype"] = value
        elif dtype != value:
            notes.append(
                f"TRANSFORMERS_DTYPE={value} is not read: DTYPE sets the dtype of both engines"
            )
    for name, replacement in GONE.items():
        value = _given(env, name)
        if value is not None and value != _HONOURED_AS_IS.get(name):
            notes.append(f"{name}={value} has no effect here: {replacement}")
    return values, notes


def _translate_switches(env: Mapping[str, str], give: Callable[[str, Any, str], None]) -> None:
    if (value := _given(env, "DISABLE_TOKEN_ROUTING")) is not None:
        give("token_budgets", "0" if _truthy(value) else "1", f"DISABLE_TOKEN_ROUTING={value}")
    force, use = _given(env, "FORCE_VLLM"), _given(env, "USE_VLLM")
    if force is not None and _truthy(force):
        give("engine", "vllm", f"FORCE_VLLM={force}")
    elif use is not None:
        off = use.lower() in {"0", "false", "no", "off"}
        give("engine", "transformers" if off else "auto", f"USE_VLLM={use}")
    if (value := _given(env, "FAST_CHAT_TEMPLATE")) is not None:
        give("chat_template", "chatml" if _truthy(value) else "auto", f"FAST_CHAT_TEMPLATE={value}")
    if (value := _given(env, "LONG_ANSWER_ENABLE_DEFAULT")) is not None and not _truthy(value):
        give("long_pattern", "", f"LONG_ANSWER_ENABLE_DEFAULT={value}")


def _translate_budgets(
    env: Mapping[str, str],
    ours: Mapping[str, str],
    values: dict[str, Any],
    notes: list[str],
    give: Callable[[str, Any, str], None],
) -> None:
    """MAX_NEW_TOKENS caps every budget here; there it was the short-answer budget. With the
    predecessor's other budget names set (a sourced predecessor env file) and ours unset, it
    is read its way: SHORT_MAX_NEW_TOKENS, and the cap becomes the largest budget."""
    hard, soft = _given(env, "MAX_NEW_TOKENS_CODE_HARD"), _given(env, "MAX_NEW_TOKENS_CODE_SOFT")
    if hard is not None:
        if soft is None:
            give("code_max_new_tokens", hard, f"MAX_NEW_TOKENS_CODE_HARD={hard}")
        elif hard != soft:
            notes.append(
                f"MAX_NEW_TOKENS_CODE_HARD={hard} has no effect here: there is no separate "
                f"hard-code route; code questions get MAX_NEW_TOKENS_CODE_SOFT={soft}"
            )
    theirs = [_given(env, n) for n in ("MAX_NEW_TOKENS_CODE", "MAX_NEW_TOKENS_CODE_SOFT")]
    short, routing = _given(env, "MAX_NEW_TOKENS"), values.get("token_budgets", "1") == "1"
    if short is None or not any(theirs + [hard]) or ours.get("short_max_new_tokens"):
        return
    if not routing:  # every answer gets MAX_NEW_TOKENS there and here: the same meaning
        return
    budgets = [int(b) for b in (short, *theirs, hard) if b is not None and b.isdigit()]
    if not short.isdigit() or not budgets:
        return
    values["short_max_new_tokens"] = short
    values["max_new_tokens"] = str(max(budgets))
    notes.append(
        f"MAX_NEW_TOKENS={short} is read as the predecessor meant it, the short-answer budget "
        f"(SHORT_MAX_NEW_TOKENS), because its MAX_NEW_TOKENS_CODE* are set; here MAX_NEW_TOKENS "
        f"caps every budget, now {max(budgets)}. Set SHORT_MAX_NEW_TOKENS to use our names."
    )


def _translate_lists(
    env: Mapping[str, str], ours: Mapping[str, str], values: dict[str, Any]
) -> None:
    extra = _given(env, "HARD_CODE_QUESTION_KEYWORDS")
    if extra is not None:
        mine = ours.get("code_question_keywords") or ""
        values["code_question_keywords"] = ",".join(p for p in (mine, extra) if p.strip())


def _translate_engine_args(
    env: Mapping[str, str], ours: Mapping[str, str], values: dict[str, Any]
) -> None:
    passed: dict[str, Any] = {}
    for name, arg in ENGINE_PASSTHROUGH.items():
        value = _given(env, name)
        if value is None or (arg == "load_format" and value == "auto"):
            continue
        if arg == "enable_chunked_prefill":
            passed[arg] = _truthy(value)
        elif arg == "tokenizer_pool_size" and value.isdigit():
            passed[arg] = int(value)
        elif arg == "compilation_config":
            try:  # the engine start retries the other spellings (engines/vllm_start.py)
                passed[arg] = json.loads(value)
            except json.JSONDecodeError:
                passed[arg] = value
        else:
            passed[arg] = value
    if not passed:
        return
    mine = ours.get("engine_extra_args")
    try:
        given = json.loads(mine) if mine and mine.strip() else {}
    except json.JSONDecodeError:
        return  # ENGINE_EXTRA_ARGS's own error is reported by its validator
    if isinstance(given, dict):
        values["engine_extra_args"] = {**passed, **given}


def known_names(fields: Fields) -> set[str]:
    """Every variable name this project (its `fields`) or the predecessor gives a meaning."""
    ours = {n for field in fields for n in own_names(fields, field)}
    theirs = set(RENAMED) | set(ENGINE_PASSTHROUGH) | set(TRANSLATED) | set(GONE)
    return ours | theirs | OTHER_KNOWN | {"PRESET", "WARMUP_NUM_SAMPLES_CAP"}


def near_miss(name: str, known: set[str]) -> str | None:
    """The known name an unknown variable is probably a typo of, or None."""
    found = difflib.get_close_matches(name.upper(), sorted(known), n=1, cutoff=MIN_MATCH)
    return found[0] if found else None


def environment_warnings(environ: Mapping[str, str], fields: Fields) -> list[str]:
    """One line per predecessor variable not honoured as it was, and per probable typo."""
    env = {k.upper(): v for k, v in environ.items()}
    notes = _translate(env, fields)[1]
    known = known_names(fields)
    for name in sorted(set(env) - known):
        match = near_miss(name, known)
        if match:
            notes.append(f"{name} is not a setting: did you mean {match}?")
    return notes


class Computed(PydanticBaseSettingsSource):
    """A settings source whose values a function computes (predecessor names, presets)."""

    def __init__(self, settings_cls: type[BaseSettings], values: Callable[[], dict[str, Any]]):
        super().__init__(settings_cls)
        self._values = values

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return self._values()
