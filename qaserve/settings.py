"""The only reader of this project's environment variables: one typed settings class.

    python -m qaserve.settings            # print the effective settings (secrets masked)

Every field is one environment variable (the upper-cased field name, or the names its
`validation_alias` lists). README's table and
`env_force.sh` are generated from this class by `python -m qaserve.settings_doc --write`.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings import SettingsError as SourceError

# the default of SYSTEM_PROMPT, and what the bundled demo model was trained with
DEFAULT_SYSTEM_PROMPT = (
    "你是《Programming Massively Parallel Processors》课程的助教。"
    "请用中文简洁准确地回答问题，保留关键的英文术语、函数名、代码标识符和数字。"
)
DEFAULT_CODE_PATTERN = r"代码|编写|写出|写一个|实现|伪代码|\bcode\b|implement|\bwrite\b"
DEFAULT_LONG_PATTERN = (
    r"详细|解释|说明|比较|区别|为什么|原理|步骤|过程|分析|优缺点|explain|compare|why"
)


# vLLM engine arguments that a typed setting already owns: ENGINE_EXTRA_ARGS may not set them,
# or the engine would run with one value while the server plans with another
TYPED_ENGINE_ARGS = {
    "model": "MODEL_DIR",
    "tokenizer": "MODEL_DIR",
    "dtype": "DTYPE",
    "seed": "SEED",
    "gpu_memory_utilization": "GPU_MEMORY_UTILIZATION",
    "max_model_len": "MAX_MODEL_LEN",
    "max_num_seqs": "MAX_NUM_SEQS",
    "max_num_batched_tokens": "MAX_NUM_BATCHED_TOKENS",
    "enable_prefix_caching": "ENABLE_PREFIX_CACHING",
    "quantization": "VLLM_QUANTIZATION",
    "kv_cache_dtype": "VLLM_KV_CACHE_DTYPE",
    "enforce_eager": "ENFORCE_EAGER",
    "async_scheduling": "ASYNC_SCHEDULING",
    "speculative_config": "ENABLE_SPECULATIVE_DECODING and SPEC_*",
    "tensor_parallel_size": "TENSOR_PARALLEL_SIZE",
    "data_parallel_size": "DATA_PARALLEL_SIZE",
}


# Valid sampling values, as vLLM checks them (SamplingParams._verify_args; 0.32 is the strictest
# release we run: temperature at most 2). One home: the settings, the request schemas and the
# console use these, so nothing the engine would refuse is accepted.
TEMPERATURE_MAX = 2.0
Temperature = Annotated[float, Field(ge=0, le=TEMPERATURE_MAX, allow_inf_nan=False)]
TopP = Annotated[float, Field(gt=0, le=1)]
TopK = Annotated[int, Field(ge=0)]
RepetitionPenalty = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Penalty = Annotated[float, Field(ge=-2, le=2)]  # frequency and presence penalties


def _non_empty_stop(value: str) -> str:
    if not value:
        raise ValueError("stop cannot contain an empty string (vLLM refuses it)")
    return value


StopString = Annotated[str, AfterValidator(_non_empty_stop)]


class SettingsError(ValueError):
    """Invalid environment: the message names each variable and what is wrong with it."""


class Settings(BaseSettings):
    """Server, engine and generation settings; each field reads the variable of its name."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", validate_default=True)

    # --- server ---
    host: str = Field("0.0.0.0", description="Interface `serve.py`/`run_model.sh` bind to.")
    port: int = Field(8000, ge=1, le=65535, description="Port to listen on (the grader uses 8000).")
    batch_mode: bool = Field(
        True, description='`GET /` answers `{"status":"batch"}` so the grader sends one batch.'
    )
    predict_deadline_s: float = Field(
        300.0,
        gt=0,
        description="Seconds a `/predict` call may run; unfinished answers are cut, never lost.",
    )
    max_batch_items: int = Field(16384, ge=1, description="Most prompts accepted in one request.")
    max_body_bytes: int = Field(
        32 * 1024 * 1024, ge=1024, description="Largest request body accepted (else 413)."
    )
    admin_token: SecretStr | None = Field(
        None, description="Bearer token that allows `POST /system_prompt` from non-local clients."
    )
    warmup: bool = Field(True, description="Run a short warm-up batch before reporting ready.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of the server's own loggers."
    )

    # --- model ---
    model_dir: Path | None = Field(
        None,
        description="Model directory to serve (an error if it holds no model); unset: the "
        "download of `MODEL_ID`.",
    )
    model_id: str = Field(
        "Qwen/Qwen2.5-0.5B-Instruct",
        description="ModelScope id fetched by `download_model.py` into `MODEL_CACHE_DIR`.",
    )
    model_cache_dir: Path = Field(
        Path("model"), description="Where `download_model.py` puts models (`--cache_dir`)."
    )
    demo_model_fallback: bool = Field(
        True,
        description="With no model found, serve the bundled PMPP demo model (`demo_model/`).",
    )
    smoke_model_fallback: bool = Field(
        False,
        description="With no model found, build and serve a tiny random smoke-test model.",
    )

    # --- model tools (download_model.py, upload_model.py) ---
    modelscope_api_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("MODELSCOPE_API_TOKEN", "MODELSCOPE_TOKEN"),
        description="ModelScope access token for private downloads and uploads (never printed).",
    )
    repo_id: str | None = Field(
        None, description="ModelScope repo (`owner/name`) `upload_model.py` uploads to."
    )

    # --- engine ---
    engine: Literal["auto", "vllm", "transformers"] = Field(
        "auto", description="Inference engine; `auto` uses vLLM and falls back to transformers."
    )
    dtype: str = Field("auto", description="Weights dtype (`auto`, `bfloat16`, `float16`, ...).")
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="Fraction of GPU memory vLLM may take."
    )
    max_model_len: int = Field(
        4096,
        ge=64,
        description="Context length (prompt + answer); longer prompts are cut. The default "
        "is capped to the model's own context length; a longer value set here is an error.",
    )
    max_num_seqs: int = Field(512, ge=1, description="Sequences vLLM schedules at once.")
    max_num_batched_tokens: int | None = Field(
        32768,
        ge=1,
        description="vLLM's token budget per scheduler step: a big batch's prompts go through "
        "in fewer steps. vLLM's async engine defaults to 2,048; 32,768 was 1.2x faster at "
        "2,048 items on an H200 and as fast at 358, with the same answers.",
    )
    enable_prefix_caching: bool = Field(
        True, description="Reuse the KV cache of the shared system prompt."
    )
    vllm_quantization: str | None = Field(
        None, description="vLLM `quantization` (e.g. `fp8`, `awq`); unset: from the model."
    )
    vllm_kv_cache_dtype: str = Field(
        "auto", description="vLLM `kv_cache_dtype` (`auto`, `fp8`, ...)."
    )
    enforce_eager: bool = Field(False, description="Disable CUDA graphs / torch.compile.")
    async_scheduling: bool | None = Field(
        None,
        description="vLLM async scheduling on/off; unset: vLLM's own choice (on where it can).",
    )
    enable_speculative_decoding: bool = Field(False, description="Turn on speculative decoding.")
    spec_method: str = Field(
        "ngram", description="Speculative method (`ngram`, `draft_model`, `eagle`, ...)."
    )
    spec_num_tokens: int = Field(4, ge=1, description="Speculative tokens proposed per step.")
    spec_draft_model: str | None = Field(
        None, description="Draft model directory for `SPEC_METHOD=draft_model`/`eagle`."
    )
    spec_draft_model_id: str | None = Field(
        None,
        description="Draft model by ModelScope id (its download under `MODEL_CACHE_DIR`); "
        "`SPEC_DRAFT_MODEL` wins when both are set.",
    )
    spec_ngram_lookup_max: int = Field(
        4, ge=1, description="`ngram` speculation: longest prompt n-gram looked up."
    )
    spec_ngram_lookup_min: int = Field(
        2, ge=1, description="`ngram` speculation: shortest prompt n-gram looked up."
    )
    spec_disable_by_batch_size: int | None = Field(
        None,
        ge=1,
        description="Speculate only while fewer requests than this run (where the installed "
        "vLLM has the option; otherwise a warning at start).",
    )
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs one model is split over.")
    data_parallel_size: int = Field(1, ge=1, description="Model replicas (one per GPU group).")
    engine_replicas: Annotated[int, Field(ge=1, le=8)] | Literal["auto"] = Field(
        "auto",
        description="vLLM engines sharing the GPU(s), each with 1/N of the memory share: "
        "spreads CPU-side scheduling of a small model over processes. `auto`: 2 on an NVIDIA "
        "GPU when two copies of the weights take at most 1/4 of the memory share and there "
        "are 4+ CPU cores, else 1; one if the second fails to start (the log and `/info` say "
        "which and why).",
    )
    decode_at_end: bool = Field(
        True,
        description="`/predict` answers: vLLM skips its per-step detokenization and the server "
        "decodes each answer's tokens once, when it ends (same text, less CPU in the API "
        "process, which serves every replica); answers with stop strings keep vLLM's.",
    )
    gc_freeze: bool = Field(
        True,
        description="Move everything the start-up allocated out of the garbage collector's "
        "reach (`gc.freeze`), and pause cyclic collection while a batch is in flight.",
    )
    dedupe_questions: bool = Field(
        True,
        description="Generate identical greedy items of a batch once and give each its copy "
        "(same prompt and parameters: same answer); sampled items are always generated apart.",
    )
    seed: int = Field(0, description="Engine random seed.")
    device_dir: Path = Field(
        Path("/dev"),
        description="Where accelerator device nodes are looked for (MetaX: `mxcd`, `mxc0`, "
        "`mxc`; there `GPU_MEMORY_UTILIZATION` defaults to 0.60, as the predecessor's did).",
    )
    engine_extra_args: Annotated[dict[str, Any], NoDecode] = Field(
        default_factory=dict,
        description="JSON object of further vLLM engine arguments (unknown names are dropped; "
        "those with a setting of their own, e.g. `max_model_len`, are refused).",
    )

    # --- generation ---
    system_prompt: str = Field(DEFAULT_SYSTEM_PROMPT, description="System prompt of every answer.")
    chat_template: Literal["auto", "chatml"] = Field(
        "auto", description="`auto`: the model's own chat template; `chatml`: plain Qwen ChatML."
    )
    temperature: Temperature = Field(0.0, description="Sampling temperature (0 = greedy).")
    top_p: TopP = Field(1.0, description="Nucleus sampling mass.")
    top_k: TopK = Field(0, description="Top-k sampling (0 = off).")
    repetition_penalty: RepetitionPenalty = Field(1.0, description="Repetition penalty (1 = off).")
    frequency_penalty: Penalty = Field(0.0, description="Frequency penalty (0 = off; vLLM only).")
    presence_penalty: Penalty = Field(0.0, description="Presence penalty (0 = off; vLLM only).")
    stop_strings: Annotated[list[StopString], NoDecode] = Field(
        default_factory=list, description="JSON list of extra stop strings."
    )
    max_new_tokens: int = Field(
        512, ge=1, description="Most tokens any answer may have; per-type budgets are capped by it."
    )
    token_budgets: bool = Field(
        True, description="Give short/long/code questions their own budgets (else all get the cap)."
    )
    short_max_new_tokens: int = Field(128, ge=1, description="Budget for short questions.")
    long_max_new_tokens: int = Field(
        256, ge=1, description="Budget for questions matching `LONG_PATTERN`."
    )
    code_max_new_tokens: int = Field(
        384, ge=1, description="Budget for questions matching `CODE_PATTERN`."
    )
    code_pattern: str = Field(DEFAULT_CODE_PATTERN, description="Regex: question asks for code.")
    long_pattern: str = Field(
        DEFAULT_LONG_PATTERN, description="Regex: question wants a long answer."
    )
    code_question_keywords: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma list (or JSON list) of words that also mark a code question "
        "(case-insensitive, added to `CODE_PATTERN`).",
    )
    long_answer_keywords: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma list (or JSON list) of words that also mark a long-answer question "
        "(added to `LONG_PATTERN`).",
    )
    log_token_routing: bool = Field(
        False, description="Log each batch's budgets as {max_tokens: count}."
    )
    trim_answers: bool = Field(
        True, description="Trim whitespace and blank-line runs outside code blocks."
    )
    stop_on_double_newline: bool = Field(
        False, description="Stop an answer at its first blank line (adds `\\n\\n` to the stops)."
    )
    output_trim_examples: bool = Field(
        False,
        description="Short answers: cut from the first example phrase (例如/比如/举例…) followed "
        "by a colon; never code answers.",
    )
    output_max_sentences: int = Field(
        0, ge=0, le=12, description="Short answers: keep at most this many sentences (0 = all)."
    )

    # --- warm-up ---
    warmup_data_path: Path | None = Field(
        None,
        description="Warm up on the questions of this file (any question format); unset: a "
        "spread of the project's own questions.",
    )
    warmup_num_samples: int = Field(
        12, ge=1, le=8192, description="Questions in the warm-up batch."
    )
    warmup_repeat: int = Field(1, ge=1, le=8, description="Times the warm-up batch is repeated.")
    warmup_max_new_tokens: int = Field(8, ge=1, description="Tokens per warm-up answer.")

    # --- presets ---
    preset: Literal["none", "predecessor"] = Field(
        "none",
        description="`predecessor`: the predecessor toolkit's serving configuration (its "
        "system prompt, budgets, sampling, penalties, engine limits) as defaults; variables "
        "set beside it still win.",
    )

    @field_validator("code_pattern", "long_pattern")
    @classmethod
    def _valid_regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    # JSON-valued variables are parsed here (NoDecode), so a bad value gets our message
    @field_validator("engine_extra_args", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        value = _json(value, {})
        if not isinstance(value, dict):
            raise ValueError('must be a JSON object, e.g. {"load_format": "dummy"}')
        owned = [
            f"{key} (set {TYPED_ENGINE_ARGS[key]})" for key in value if key in TYPED_ENGINE_ARGS
        ]
        if owned:
            raise ValueError(f"has a setting of its own: {', '.join(owned)}")
        return value

    @field_validator(
        "stop_strings", "code_question_keywords", "long_answer_keywords", mode="before"
    )
    @classmethod
    def _list(cls, value: Any) -> Any:
        # a JSON list, or the predecessor's comma list: `<|im_end|>,<|endoftext|>`
        if isinstance(value, str) and not value.strip().startswith("["):
            return [part.strip() for part in value.split(",") if part.strip()]
        value = _json(value, [])
        if not isinstance(value, list):
            raise ValueError('must be a JSON list of strings, e.g. ["###"], or a comma list')
        return value

    @field_validator("spec_method", mode="before")
    @classmethod
    def _vllm_spec_method(cls, value: Any) -> Any:
        return "draft_model" if value == "draft" else value  # the predecessor's spelling

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # flags, then the predecessor's names (only where ours are unset), then ours, then the
        # preset and platform defaults
        def preset() -> dict[str, Any]:
            name = init_settings().get("preset") or _environ().get("PRESET", "none")
            return {**platform_defaults(), **PRESETS.get(str(name).strip().lower(), {})}

        return (
            init_settings,
            _Computed(settings_cls, lambda: predecessor_values(_environ())),
            env_settings,
            _Computed(settings_cls, preset),
            dotenv_settings,
            file_secret_settings,
        )

    @field_validator("model_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    def non_defaults(self) -> dict[str, Any]:
        """Fields whose value differs from the default, secrets masked (for logs and /info)."""
        defaults = Settings.model_construct()
        return {
            name: _shown(getattr(self, name))
            for name in type(self).model_fields
            if getattr(self, name) != getattr(defaults, name)
        }

    def shown(self) -> dict[str, Any]:
        """Every field, secrets masked."""
        return {name: _shown(getattr(self, name)) for name in type(self).model_fields}


def _json(value: Any, empty: Any) -> Any:
    if not isinstance(value, str):
        return value
    if not value.strip():
        return empty
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None


def _shown(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "***"
    if isinstance(value, Path):
        return str(value)
    return value


# --- the predecessor toolkit's names (issue 20; ../shared/PREDECESSOR.md) -------------------
# Its users source their old env files: every serving variable it read either sets the
# setting of the same meaning here, or gets one WARNING at start naming what replaced it.

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


def metax_present(device_dir: Path | None = None) -> bool:
    """A MetaX accelerator is present: one of its device nodes exists (as the predecessor
    detected it)."""
    root = device_dir or Path(_environ().get("DEVICE_DIR") or "/dev")
    return any((root / node).exists() for node in METAX_NODES)


def platform_defaults() -> dict[str, Any]:
    """Defaults that depend on the machine: MetaX leaves 40 % of its memory to the runtime."""
    return {"gpu_memory_utilization": 0.60} if metax_present() else {}


def _environ() -> dict[str, str]:
    return {key.upper(): value for key, value in os.environ.items()}


def _given(env: Mapping[str, str], name: str) -> str | None:
    # the predecessor read a blank value as unset (its env_force.sh exports VLLM_MAX_NUM_SEQS="")
    value = env.get(name)
    return value.strip() if value is not None and value.strip() else None


def _truthy(value: str) -> bool:
    return value.lower() in {"1", "true", "yes", "on"}


def own_names(field: str) -> list[str]:
    """The variables of one of our fields: its upper-cased name, or the names its alias lists."""
    alias = Settings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return [str(c).upper() for c in alias.choices if isinstance(c, str)]
    return [str(alias or field).upper()]


def _ours(env: Mapping[str, str], field: str) -> str | None:
    return next((env[n] for n in own_names(field) if n in env), None)


def predecessor_values(env: Mapping[str, str]) -> dict[str, Any]:
    """Field values the predecessor's variables ask for (where ours are unset)."""
    return _translate(env)[0]


def _translate(env: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    values: dict[str, Any] = {}
    notes: list[str] = []

    def give(field: str, value: Any, source: str) -> None:
        mine = _ours(env, field)
        if mine is None:
            values[field] = value
        elif mine.strip() != str(value):
            notes.append(f"{source} ignored: {own_names(field)[0]}={mine} is set and wins")

    for name, field in RENAMED.items():
        if (value := _given(env, name)) is not None:
            give(field, value, f"{name}={value}")
    _translate_switches(env, give)
    _translate_budgets(env, values, notes, give)
    _translate_lists(env, values)
    _translate_engine_args(env, values)
    samples, cap = _given(env, "WARMUP_NUM_SAMPLES"), _given(env, "WARMUP_NUM_SAMPLES_CAP")
    if cap is not None and cap.isdigit() and (samples is None or samples.isdigit()):
        # a cap on our own variable's value: applied even though WARMUP_NUM_SAMPLES is ours
        values["warmup_num_samples"] = str(max(1, min(int(samples or 12), int(cap), 8192)))
    if (value := _given(env, "TRANSFORMERS_DTYPE")) is not None:
        dtype = _ours(env, "dtype")
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
    if short is None or not any(theirs + [hard]) or _ours(env, "short_max_new_tokens"):
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


def _translate_lists(env: Mapping[str, str], values: dict[str, Any]) -> None:
    extra = _given(env, "HARD_CODE_QUESTION_KEYWORDS")
    if extra is not None:
        mine = _ours(env, "code_question_keywords") or ""
        values["code_question_keywords"] = ",".join(p for p in (mine, extra) if p.strip())


def _translate_engine_args(env: Mapping[str, str], values: dict[str, Any]) -> None:
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
            try:  # the engine start retries the other spellings (engines/vllm.py)
                passed[arg] = json.loads(value)
            except json.JSONDecodeError:
                passed[arg] = value
        else:
            passed[arg] = value
    if not passed:
        return
    mine = _ours(env, "engine_extra_args")
    try:
        given = json.loads(mine) if mine and mine.strip() else {}
    except json.JSONDecodeError:
        return  # ENGINE_EXTRA_ARGS's own error is reported by its validator
    if isinstance(given, dict):
        values["engine_extra_args"] = {**passed, **given}


def known_names() -> set[str]:
    """Every variable name this project or the predecessor toolkit gives a meaning."""
    ours = {n for field in Settings.model_fields for n in own_names(field)}
    theirs = set(RENAMED) | set(ENGINE_PASSTHROUGH) | set(TRANSLATED) | set(GONE)
    return ours | theirs | OTHER_KNOWN | {"PRESET", "WARMUP_NUM_SAMPLES_CAP"}


def near_miss(name: str, known: set[str]) -> str | None:
    """The known name an unknown variable is probably a typo of, or None."""
    found = difflib.get_close_matches(name.upper(), sorted(known), n=1, cutoff=MIN_MATCH)
    return found[0] if found else None


def environment_warnings(environ: Mapping[str, str] | None = None) -> list[str]:
    """One line per predecessor variable not honoured as it was, and per probable typo."""
    env = _environ() if environ is None else {k.upper(): v for k, v in environ.items()}
    notes = _translate(env)[1]
    known = known_names()
    for name in sorted(set(env) - known):
        match = near_miss(name, known)
        if match:
            notes.append(f"{name} is not a setting: did you mean {match}?")
    return notes


class _Computed(PydanticBaseSettingsSource):
    """A settings source whose values a function computes (predecessor names, presets)."""

    def __init__(self, settings_cls: type[BaseSettings], values: Callable[[], dict[str, Any]]):
        super().__init__(settings_cls)
        self._values = values

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return self._values()


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (plus explicit overrides); raise SettingsError naming each variable."""
    try:
        return Settings(**overrides)
    except SourceError as exc:  # a value pydantic-settings could not even read
        raise SettingsError(f"invalid settings: {exc}") from None
    except ValidationError as exc:
        problems = [
            f"{str(err['loc'][0]).upper()}: {err['msg']}" for err in exc.errors() if err["loc"]
        ]
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return load_settings()


if __name__ == "__main__":
    print(json.dumps(get_settings().shown(), ensure_ascii=False, indent=2))
