"""Health, readiness, engine death, `/info` and `/metrics`, in-process on a fake engine.

pytest tests/server/test_api_health.py -q
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import qaserve.server.app
from qaserve.questions import warmup_questions
from qaserve.server.app import create_app
from qaserve.settings import load_settings
from tests.support.fake_engine import SHARED_SETTINGS, ClientFactory, FakeEngine, assert_error


def _app(fake: FakeEngine, model_dir: Path) -> FastAPI:
    """The app on `fake`, without warm-up or exit on engine death."""
    return create_app(
        load_settings(model_dir=model_dir, warmup=False),
        engine_factory=lambda s, d, tok: fake.attach(tok),
        exit_on_engine_death=False,
    )


def test_not_ready_before_the_lifespan_ran(tiny_model_dir: Path) -> None:
    fake = FakeEngine()
    app = _app(fake, tiny_model_dir)
    client = TestClient(app)  # not entered: the lifespan (engine load) has not run
    error = assert_error(client.get("/"), 503)
    assert (error["type"], error["message"]) == ("unavailable", "loading")
    assert assert_error(client.get("/health"), 503)["message"] == "loading"
    assert_error(client.post("/predict", json={"prompt": "q"}), 503)
    assert_error(client.get("/system_prompt"), 503)
    assert client.get("/info").json()["ready"] is False
    assert not fake.calls


def test_batch_status_once_ready(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.json() == {"status": "batch"}
    assert client.head("/").status_code == 200
    assert client.get("/health").json() == {"status": "batch"}  # where vLLM users look
    assert client.head("/health").status_code == 200


def test_ok_status_without_batch_mode(make_client: ClientFactory) -> None:
    client, _ = make_client(batch_mode=False)
    assert client.get("/").json() == {"status": "ok"}


def test_warm_up_runs_before_ready(make_client: ClientFactory) -> None:
    client, fake = make_client(warmup=True)
    assert len(fake.calls) == 1  # one short batch of the project's questions, before ready
    assert fake.calls[0].questions == warmup_questions()
    assert {p.max_new_tokens for p in fake.calls[0].params} == {8}
    assert client.get("/").status_code == 200
    assert "qa_items_total 0.0" in client.get("/metrics").text  # warm-up is not traffic


def test_lifespan_closes_the_engine(tiny_model_dir: Path) -> None:
    fake = FakeEngine()
    app = _app(fake, tiny_model_dir)
    with TestClient(app) as client:
        assert client.get("/").status_code == 200
        assert not fake.closed
    assert fake.closed


def test_dead_engine_fails_health_within_seconds(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(qaserve.server.app, "WATCHDOG_INTERVAL_S", 0.05)
    client, fake = make_client()
    assert client.get("/").status_code == 200
    fake.healthy = False
    deadline = time.monotonic() + 5
    while client.get("/").status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    error = assert_error(client.get("/"), 503)
    assert error["message"] == "dead"
    assert assert_error(client.get("/health"), 503)["message"] == "dead"
    assert_error(client.post("/predict", json={"prompt": "q"}), 503)
    assert_error(client.post("/v1/chat/completions", json=_chat()), 503)


def _chat() -> dict[str, object]:
    return {"messages": [{"role": "user", "content": "q"}]}


def test_info_shows_engine_and_masked_settings(client: TestClient, tiny_model_dir: Path) -> None:
    info = client.get("/info").json()
    assert info["ready"] is True
    assert info["engine"] == {"name": "fake", "version": "0"}
    assert info["model_dir"] == str(tiny_model_dir)
    assert info["smoke_model"] is True  # the fixture's model carries the smoke marker
    assert info["settings"]["admin_token"] == "***"
    assert info["settings"]["max_batch_items"] == SHARED_SETTINGS["max_batch_items"]
    assert "port" not in info["settings"]  # only non-default settings are listed
    startup = info["startup_s"]  # where the start-up went, and in all
    assert list(startup) == ["model and tokenizer", "engine", "warm-up", "total"]
    parts = sum(v for k, v in startup.items() if k != "total")
    assert min(startup.values()) >= 0 and abs(parts - startup["total"]) <= 0.2


def test_info_never_contains_the_admin_token(client: TestClient) -> None:
    token = SHARED_SETTINGS["admin_token"]
    headers = {"Authorization": f"Bearer {token}"}
    client.post("/system_prompt", json={"system_prompt": "临时"}, headers=headers)
    try:
        for path in ("/info", "/metrics", "/system_prompt", "/"):
            assert token not in client.get(path).text, path
    finally:
        client.post("/system_prompt", json={"reset": True}, headers=headers)


def test_metrics_text_has_the_qa_metrics(client: TestClient) -> None:
    client.post("/predict", json={"prompt": ["a", "b"]})
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    for name in (
        "qa_requests_total",
        "qa_request_seconds_bucket",
        "qa_batch_items_bucket",
        "qa_items_total",
        "qa_empty_answers_total",
        "qa_failed_items_total",
        "qa_deadline_cut_items_total",
        "qa_prompt_tokens_total",
        "qa_answer_tokens_total",
        "qa_answer_chars_total",
    ):
        assert f"\n{name}" in text, name
    assert 'qa_requests_total{endpoint="/predict",status="200"}' in text


def test_unknown_paths_share_one_metrics_label(client: TestClient) -> None:
    for n in range(3):
        client.get(f"/no/such/path/{n}")
    text = client.get("/metrics").text
    assert 'endpoint="other",status="404"' in text
    assert "/no/such/path" not in text
