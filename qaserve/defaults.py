"""The settings' defaults that are data, not logic, and their two value helpers.

The system prompt the demo model was trained with, the question patterns of the token budgets,
the vLLM engine arguments a typed setting owns; how a JSON-valued variable is read and how a
value is shown (secrets masked). Imports nothing of ours: the model tools and tests take the
defaults from here without the settings.

    python -c "from qaserve.defaults import DEFAULT_SYSTEM_PROMPT; print(DEFAULT_SYSTEM_PROMPT)"
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import SecretStr

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


def json_value(value: Any, empty: Any) -> Any:
    """A JSON-valued variable parsed (blank: `empty`); a value not a string is passed on."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return empty
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None


def shown_value(value: Any) -> Any:
    """A setting's value as logs and /info show it: secrets masked, paths as text."""
    if isinstance(value, SecretStr):
        return "***"
    if isinstance(value, Path):
        return str(value)
    return value
