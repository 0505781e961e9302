"""OpenAI-compatible `/v1/models` and `/v1/chat/completions` (plain and SSE) on a fake engine.

pytest tests/server/test_api_openai.py -q
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from qaserve.defaults import DEFAULT_SYSTEM_PROMPT
from qaserve.settings import load_settings
from tests.support.fake_engine import FakeEngine, assert_error

QUESTION = "什么是warp？"


def _chat(**extra: Any) -> dict[str, Any]:
    return {"model": "whatever", "messages": [{"role": "user", "content": QUESTION}], **extra}


def test_models_lists_the_served_model(client: TestClient, tiny_model_dir: Path) -> None:
    r = client.get("/v1/models")
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [tiny_model_dir.name]
    assert body["data"][0]["object"] == "model"


def test_chat_completion(client: TestClient, fake: FakeEngine, tiny_model_dir: Path) -> None:
    r = client.post("/v1/chat/completions", json=_chat())
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == tiny_model_dir.name
    (choice,) = body["choices"]
    assert choice["message"] == {"role": "assistant", "content": f"answer to {QUESTION}"}
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0
    assert usage["completion_tokens"] == len(f"answer to {QUESTION}")  # the fake's token count
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    (prompt,) = fake.last.prompts
    assert DEFAULT_SYSTEM_PROMPT in prompt  # the server's system prompt when the client gave none


def test_client_system_message_replaces_the_servers(client: TestClient, fake: FakeEngine) -> None:
    messages = [
        {"role": "system", "content": "Answer in English."},
        {"role": "user", "content": QUESTION},
    ]
    assert client.post("/v1/chat/completions", json={"messages": messages}).status_code == 200
    (prompt,) = fake.last.prompts
    assert "Answer in English." in prompt
    assert DEFAULT_SYSTEM_PROMPT not in prompt


def test_chat_overrides_reach_gen_params(client: TestClient, fake: FakeEngine) -> None:
    body = _chat(max_tokens=7, temperature=0.5, top_p=0.8, stop="END", seed=3)
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    (params,) = fake.last.params
    assert params.max_new_tokens == 7
    assert (params.temperature, params.top_p, params.seed) == (0.5, 0.8, 3)
    assert params.stop == ("END",)
    body = _chat(max_tokens=7, max_completion_tokens=9, stop=["a", "b"])
    client.post("/v1/chat/completions", json=body)
    assert fake.last.params[0].max_new_tokens == 9  # the newer field wins
    assert fake.last.params[0].stop == ("a", "b")


def _sse_events(client: TestClient, body: dict[str, Any]) -> tuple[Any, list[str]]:
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        lines = [line for line in r.iter_lines() if line]
    return r, lines


def test_streaming_chat_is_sse(client: TestClient, fake: FakeEngine) -> None:
    r, lines = _sse_events(client, _chat(stream=True, max_tokens=5))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert all(line.startswith("data: ") for line in lines), lines
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0]["role"] == "assistant"
    assert "".join(d.get("content", "") for d in deltas) == f"answer to {QUESTION}"
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    (streamed,) = fake.streamed
    assert streamed[0] == QUESTION
    assert streamed[1].max_new_tokens == 5


@pytest.mark.parametrize(
    ("engine_finish", "reason"), [("stop", "stop"), ("length", "length"), ("deadline", "length")]
)
def test_streamed_finish_reason_follows_the_engine(
    client: TestClient, fake: FakeEngine, engine_finish: str, reason: str
) -> None:
    fake.stream_finish = engine_finish
    _, lines = _sse_events(client, _chat(stream=True))
    last = json.loads(lines[-2].removeprefix("data: "))
    assert last["choices"][0] == {"index": 0, "delta": {}, "finish_reason": reason}


@pytest.mark.parametrize(
    "body",
    [
        {"messages": []},
        {"messages": [{"role": "tool", "content": "x"}]},
        {"messages": [{"role": "user"}]},
        _chat(n=2),
        _chat(max_tokens=0),
        _chat(temperature=-1),
        {"model": "x"},
    ],
    ids=["no messages", "bad role", "no content", "n=2", "max_tokens 0", "temperature", "none"],
)
def test_invalid_chat_request_is_422(client: TestClient, fake: FakeEngine, body: Any) -> None:
    assert_error(client.post("/v1/chat/completions", json=body), 422)
    assert not fake.calls and not fake.streamed


def test_stream_past_the_deadline_closes_the_engine_stream_at_once(tiny_model_dir: Path) -> None:
    """At the deadline the engine's stream is closed before the answer ends (a real engine
    aborts the request there), not later when the garbage collector finds it."""
    from transformers import AutoTokenizer

    from qaserve.answering.prompts import PromptBuilder
    from qaserve.answering.service import QAService, Usage
    from qaserve.server.metrics import Metrics

    settings = load_settings(model_dir=tiny_model_dir, warmup=False, predict_deadline_s=0.05)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    fake = FakeEngine().attach(tokenizer)
    fake.stream_delay_s = 0.1  # every piece arrives after the deadline
    service = QAService(settings, fake, PromptBuilder(tokenizer, settings.chat_template), Metrics())  # type: ignore[arg-type]

    async def consume() -> tuple[list[str | None], int]:
        messages = [{"role": "user", "content": QUESTION}]
        finishes = [finish async for _, finish in service.chat_stream(messages, {}, Usage())]
        return finishes, fake.streams_open  # read before anything else runs on the loop

    finishes, still_open = asyncio.run(consume())
    assert finishes == [None, "deadline"]
    assert still_open == 0
