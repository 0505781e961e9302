"""The only reader of this project's environment variables: one typed settings class.

    python -m qaserve.settings            # print the effective settings (secrets masked)

Every field is one environment variable (the upper-cased field name, or the names its
`validation_alias` lists). README's table and
`env_force.sh` are generated from this class by `python -m qaserve.settings_doc --write`.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from qaserve.defaults import (
    DEFAULT_CODE_PATTERN,
    DEFAULT_LONG_PATTERN,
    DEFAULT_SYSTEM_PROMPT,
    TYPED_ENGINE_ARGS,
    json_value,
    shown_value,
)
from qaserve.predecessor import PRESETS, Computed, platform_defaults, predecessor_values
from qaserve.sampling import Penalty, RepetitionPenalty, StopString, Temperature, TopK, TopP


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
        value = json_value(value, {})
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
        value = json_value(value, [])
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
            env = environ()
            name = init_settings().get("preset") or env.get("PRESET", "none")
            device_dir = Path(env.get("DEVICE_DIR") or cls.model_fields["device_dir"].default)
            return {**platform_defaults(device_dir), **PRESETS.get(str(name).strip().lower(), {})}

        fields = settings_cls.model_fields
        return (
            init_settings,
            Computed(settings_cls, lambda: predecessor_values(environ(), fields)),
            env_settings,
            Computed(settings_cls, preset),
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
            name: shown_value(getattr(self, name))
            for name in type(self).model_fields
            if getattr(self, name) != getattr(defaults, name)
        }

    def shown(self) -> dict[str, Any]:
        """Every field, secrets masked."""
        return {name: shown_value(getattr(self, name)) for name in type(self).model_fields}


def environ() -> dict[str, str]:
    """This process's environment variables, names upper-cased (read here only)."""
    return {key.upper(): value for key, value in os.environ.items()}


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
