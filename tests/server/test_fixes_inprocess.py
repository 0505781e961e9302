"""The server fixes the reliability suite asked for, on the fake engine (seconds, no vLLM).

    pytest tests/server/test_fixes_inprocess.py -q

- a client that disconnects has its items aborted (counted in qa_aborted_items_total);
- a dead engine fails health at once (not after the watchdog's next tick) and a batch it
  failed is a 503, never a 200 full of empty answers;
- a body that is not UTF-8 says so; the OpenAPI schema documents the one error body.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.support.fake_engine import (
    FAIL_MARKER,
    FakeEngine,
    assert_error_shape,
    fake_app,
    metric,
)
from tests.support.servers import UvicornThread

ERROR_REF = "#/components/schemas/ErrorResponse"


def _wait_until(condition: object, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("route", ["/predict", "/v1/chat/completions"])
def test_a_client_that_leaves_has_its_items_aborted(tiny_model_dir: Path, route: str) -> None:
    fake = FakeEngine()
    app = fake_app(tiny_model_dir, fake)
    batch = {"prompt": [f"q{i}" for i in range(7)]}
    chat = {"messages": [{"role": "user", "content": "q"}]}
    body, items = (batch, 7) if route == "/predict" else (chat, 1)
    with UvicornThread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        fake.delay_s = 60.0  # the engine would work for a minute (the deadline is 300 s)
        with pytest.raises(httpx.ReadTimeout):
            client.post(route, json=body, timeout=1.0)
        assert _wait_until(lambda: fake.active == 0), "the engine call was not cancelled"
        assert metric(client, "qa_aborted_items_total") == items
        fake.delay_s = 0.0
        answer = client.post("/predict", json={"prompt": ["a", "b"]})  # next one unaffected
        assert answer.json() == {"response": ["answer to a", "answer to b"]}
        assert metric(client, "qa_aborted_items_total") == items


def test_a_patient_client_is_not_aborted(tiny_model_dir: Path) -> None:
    fake = FakeEngine()
    with UvicornThread(fake_app(tiny_model_dir, fake)) as url:
        fake.delay_s = 1.6  # several disconnect polls pass while it waits
        response = httpx.post(f"{url}/predict", json={"prompt": ["x"]}, timeout=30)
        assert response.json() == {"response": ["answer to x"]}
        assert metric(httpx.Client(base_url=url), "qa_aborted_items_total") == 0


def test_a_dead_engine_fails_health_at_once(tiny_model_dir: Path) -> None:
    fake = FakeEngine()
    with TestClient(fake_app(tiny_model_dir, fake)) as client:
        assert client.get("/").status_code == 200
        fake.healthy = False  # the watchdog ticks every 5 s: health must not wait for it
        response = client.get("/")
        assert response.status_code == 503, response.text
        assert response.json()["error"]["message"] == "dead"
        assert client.post("/predict", json={"prompt": "q"}).status_code == 503


def test_a_batch_the_dead_engine_failed_is_a_503(tiny_model_dir: Path) -> None:
    fake = FakeEngine()
    with TestClient(fake_app(tiny_model_dir, fake)) as client:
        fake.crash = RuntimeError("EngineDeadError")  # dies while answering
        fake.healthy = False
        response = client.post("/predict", json={"prompt": ["a", "b"]})
        assert response.status_code == 503, response.text
        assert_error_shape(503, response.json())
        assert "died" in response.json()["error"]["message"]
        assert client.get("/").status_code == 503


def test_a_failed_item_of_a_healthy_engine_is_still_a_200(tiny_model_dir: Path) -> None:
    fake = FakeEngine()
    with TestClient(fake_app(tiny_model_dir, fake)) as client:
        response = client.post("/predict", json={"prompt": ["a", f"x {FAIL_MARKER}"]})
        assert response.status_code == 200, response.text
        assert response.json() == {"response": ["answer to a", ""]}


def test_a_non_utf8_body_says_it_is_not_utf8(tiny_model_dir: Path) -> None:
    with TestClient(fake_app(tiny_model_dir, FakeEngine())) as client:
        body = b'{"prompt": "caf\xe9"}'
        response = client.post(
            "/predict", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert_error_shape(400, response.json())
        message = response.json()["error"]["message"]
        assert "not valid UTF-8 JSON" in message and "0xe9" in message, message


def test_openapi_documents_the_error_body(tiny_model_dir: Path) -> None:
    with TestClient(fake_app(tiny_model_dir, FakeEngine())) as client:
        schema = client.get("/openapi.json").json()
    error = schema["components"]["schemas"]["ErrorResponse"]
    assert error["required"] == ["error"]
    detail = schema["components"]["schemas"]["ErrorDetail"]
    assert set(detail["required"]) == {"message", "type", "code"}
    expected = {
        ("get", "/"): {"503"},
        ("post", "/predict"): {"400", "413", "422", "503"},
        ("get", "/system_prompt"): {"503"},
        ("post", "/system_prompt"): {"400", "403", "413", "422", "503"},
        ("post", "/v1/chat/completions"): {"400", "413", "422", "500", "503"},
    }
    for (method, path), statuses in expected.items():
        responses = schema["paths"][path][method]["responses"]
        errors = {s for s in responses if s[0] in "45"}
        assert errors == statuses, (method, path, sorted(responses))
        for status in errors:
            ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
            assert ref == ERROR_REF, (method, path, status)
    stream = schema["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert "text/event-stream" in stream


@pytest.mark.engine  # the transformers engine, in-process
def test_the_transformers_engine_stops_a_cancelled_generate(tiny_model_dir: Path) -> None:
    """Cancelling the awaiting coroutine ends the generate thread too (it holds the device
    lock): the next request is not stuck behind an answer nobody reads."""
    from transformers import AutoTokenizer

    from qaserve.engines import stop_token_ids
    from qaserve.engines.base import GenParams
    from qaserve.engines.hf import HfEngine
    from qaserve.settings import load_settings

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    settings = load_settings(model_dir=tiny_model_dir, dtype="float32", engine="transformers")
    engine = HfEngine.load(settings, tiny_model_dir, tokenizer, stop_token_ids(tokenizer))
    ids = tokenizer("什么是CUDA？")["input_ids"]
    endless = GenParams(max_new_tokens=1800)  # long enough to take minutes on this CPU

    async def scenario() -> tuple[float, str]:
        task = asyncio.ensure_future(engine.generate([ids] * 4, [endless] * 4, None))
        await asyncio.sleep(1.0)
        task.cancel()
        start = time.monotonic()
        (result,) = await engine.generate([ids], [GenParams(max_new_tokens=4)], None)
        return time.monotonic() - start, result.finish

    waited, finish = asyncio.run(scenario())
    assert finish in ("stop", "length")
    assert waited < 10, f"the next generate waited {waited:.1f} s for the cancelled one"
