"""The grader-contract client against a tiny fake server (FastAPI + uvicorn in a thread).

pytest tests/test_client.py -q

The fake answers `answer:<question>`; the question text picks a misbehaviour: `BOOM` → 500
with the one JSON error body, `SHORT` → one answer too few, `SLOW` → answers after 3 s,
`NUM` → a number instead of a string. `GET /` answers 503 for the first `not_ready` probes.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from qaserve import client as http
from tests.support.fake_grader import FakeServer, free_port

# --- predict ---------------------------------------------------------------------------------


def test_batch_answers_in_order_with_time(fake: FakeServer) -> None:
    answers, seconds = http.predict_batch(fake.url, ["a", "b", "c"], timeout_s=5)
    assert answers == ["answer:a", "answer:b", "answer:c"]
    assert 0 < seconds < 5
    assert fake.posts == [["a", "b", "c"]]  # one POST


def test_wrong_count_is_an_error_not_padded(fake: FakeServer) -> None:
    with pytest.raises(http.BadResponse, match="sent 3 questions, got 2 answers") as info:
        http.predict_batch(fake.url, ["a", "SHORT", "c"], timeout_s=5)
    assert info.value.elapsed_s is not None


def test_non_string_answers_are_errors(fake: FakeServer) -> None:
    with pytest.raises(http.BadResponse):
        http.predict_batch(fake.url, ["a", "NUM"], timeout_s=5)
    with pytest.raises(http.BadResponse):
        http.predict_one(fake.url, "NUM", timeout_s=5)


def test_5xx_is_server_error_with_the_servers_message(fake: FakeServer) -> None:
    with pytest.raises(http.ServerError) as info:
        http.predict_batch(fake.url, ["a", "BOOM"], timeout_s=5)
    assert info.value.status == 500
    assert info.value.message == "engine exploded"
    assert "HTTP 500: engine exploded" in str(info.value)


def test_timeout_is_request_timeout(fake: FakeServer) -> None:
    start = time.monotonic()
    with pytest.raises(http.RequestTimeout) as info:
        http.predict_one(fake.url, "SLOW", timeout_s=0.5)
    assert time.monotonic() - start < 2.5
    assert info.value.elapsed_s is not None and info.value.elapsed_s >= 0.5


def test_predict_one(fake: FakeServer) -> None:
    answer, seconds = http.predict_one(fake.url + "/", "什么是CUDA？", timeout_s=5)
    assert answer == "answer:什么是CUDA？" and seconds > 0
    assert fake.posts == ["什么是CUDA？"]  # a plain string, not a list of one


def test_predict_each_keeps_order_and_errors_per_question(fake: FakeServer) -> None:
    questions = [f"q{i}" for i in range(12)] + ["BOOM"]
    done: list[int] = []
    results = http.predict_each(fake.url, questions, 5, workers=4, on_done=lambda: done.append(1))
    assert len(done) == len(questions)
    assert [a for a, _, _ in results[:12]] == [f"answer:q{i}" for i in range(12)]
    assert all(s is not None and s > 0 for _, s, _ in results)
    answer, _, error = results[12]
    assert answer is None and isinstance(error, http.ServerError)


def test_unreachable_server_is_typed_and_skips_the_rest() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(http.ServerUnreachable):
        http.predict_one(url, "a", timeout_s=2)
    results = http.predict_each(url, ["a", "b", "c"], 2, workers=1)
    assert all(answer is None for answer, _, _ in results)
    assert all(isinstance(error, http.ServerUnreachable) for _, _, error in results)
    assert "skipped" in str(results[-1][2])


# --- health ------------------------------------------------------------------------------------


def test_wait_ready_polls_through_503(fake: FakeServer) -> None:
    fake.not_ready = 3
    assert http.wait_ready(fake.url, timeout_s=10, interval_s=0.05) == {"status": "batch"}
    assert fake.not_ready == 0


def test_wait_ready_gives_up_with_the_last_error(fake: FakeServer) -> None:
    fake.not_ready = 1000
    start = time.monotonic()
    with pytest.raises(http.ServerNotReady, match="HTTP 503: loading"):
        http.wait_ready(fake.url, timeout_s=0.5, interval_s=0.1)
    assert time.monotonic() - start < 3


def test_wait_ready_zero_tries_once(fake: FakeServer) -> None:
    fake.status = "ok"
    assert http.wait_ready(fake.url, timeout_s=0) == {"status": "ok"}
    with pytest.raises(http.ServerNotReady, match="1 tries"):
        http.wait_ready(f"http://127.0.0.1:{free_port()}", timeout_s=0)


def test_error_message_shapes() -> None:
    def response(status: int, **kwargs: Any) -> httpx.Response:
        return httpx.Response(status, request=httpx.Request("GET", "http://x/"), **kwargs)

    assert http.error_message(response(422, json={"error": {"message": "bad"}})) == "bad"
    assert http.error_message(response(404, json={"detail": "Not Found"})) == "Not Found"
    assert http.error_message(response(502, text="bad gateway")) == "bad gateway"
    assert http.error_message(response(502, text="")) == "Bad Gateway"


def test_mock_transport_client_is_used() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={"response": ["x", "y"]})

    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        answers, _ = http.predict_batch("http://server", ["a", "b"], 5, client=client)
    assert answers == ["x", "y"] and seen == ["/predict"]
