"""The grading contract over real HTTP: health, single and batch /predict, bad input, limits.

    pytest tests/server/test_predict.py -q

The model is a tiny random Qwen2 (fp32, greedy): its answers are noise, but deterministic
noise that differs between questions, which is what proves count and order.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from tests.support.checks import assert_error, metric, predict, question_set, read_metrics
from tests.support.harness import ADMIN_TOKEN, MAIN_MAX_BATCH_ITEMS, MAIN_MAX_BODY_BYTES, Server

pytestmark = pytest.mark.engine

FAST = {"max_new_tokens": 16}
JSON = {"content-type": "application/json"}
SAMPLE = [0, 1, 2, 45, 99, 150, 177, 212, 260, 301, 356, 357]  # 12 indexes of the 358


# --- health ---------------------------------------------------------------------------------


def test_health_refuses_or_503_until_ready_then_batch(server: Server, client: httpx.Client):
    # The fixture probed `GET /` every 0.25 s from right after spawning until the first 200.
    assert server.first_probe_s < 5.0, server.first_probe_s
    assert server.pre_ready, "the very first probe was already 200: loading state never seen"
    assert set(server.pre_ready) <= {"refused", "503"}, server.pre_ready
    start = time.monotonic()
    response = client.get("/")
    elapsed = time.monotonic() - start
    assert response.status_code == 200
    assert response.json() == {"status": "batch"}  # BATCH_MODE defaults on
    assert elapsed < 1.0, f"health took {elapsed:.2f} s"


# --- answers --------------------------------------------------------------------------------


def test_single_prompt_gets_one_nonempty_string(client: httpx.Client):
    answer = predict(client, "什么是CUDA？")  # server defaults: the grader sends no overrides
    assert answer.strip(), repr(answer)


def test_batch_of_358_keeps_count_and_order(server: Server, client: httpx.Client):
    questions = question_set(358)
    latencies: list[float] = []
    health_codes: list[int] = []
    result: dict[str, httpx.Response] = {}

    def send_batch() -> None:
        with server.client() as c:
            result["batch"] = c.post("/predict", json={"prompt": questions, **FAST})

    sender = threading.Thread(target=send_batch)
    sender.start()
    with server.client(timeout=30) as probe:  # the health check must stay fast under load
        while sender.is_alive():
            start = time.monotonic()
            health_codes.append(probe.get("/").status_code)
            latencies.append(time.monotonic() - start)
            time.sleep(0.2)
    sender.join()
    assert set(health_codes) <= {200}, health_codes
    assert max(latencies, default=0.0) < 3.0, f"health latency during a batch: {max(latencies)}"

    response = result["batch"]
    assert response.status_code == 200, response.text
    answers = response.json()["response"]
    assert isinstance(answers, list) and len(answers) == len(questions)
    assert all(isinstance(a, str) for a in answers)
    assert sum(1 for a in answers if a.strip()) >= 350, "too many empty answers"
    assert len(set(answers)) >= 300, "answers barely depend on the question"

    singles = {i: predict(client, questions[i], **FAST) for i in SAMPLE}
    # The sampled answers differ from each other, so a shuffled or shifted batch cannot match.
    assert len(set(singles.values())) >= len(SAMPLE) - 1, singles
    mismatched = {i: (singles[i], answers[i]) for i in SAMPLE if singles[i] != answers[i]}
    assert len(mismatched) <= 1, f"batch answer != answer sent alone at {mismatched}"


def test_prompts_alias_answers_like_prompt(client: httpx.Client):
    questions = question_set(24, prefix="别名问题")
    via_prompt = predict(client, questions, **FAST)
    response = client.post("/predict", json={"prompts": questions, **FAST})
    assert response.status_code == 200, response.text
    via_alias = response.json()["response"]
    assert len(via_alias) == len(questions)
    same = sum(a == b for a, b in zip(via_prompt, via_alias, strict=True))
    assert same >= len(questions) - 1, (via_prompt, via_alias)
    single = client.post("/predict", json={"prompts": questions[0], **FAST}).json()
    assert single == {"response": predict(client, questions[0], **FAST)}


def test_empty_null_and_number_items(client: httpx.Client):
    assert predict(client, "") == ""
    assert predict(client, "   \n ") == ""  # blank questions are answered "" without the engine
    assert predict(client, [], **FAST) == []
    assert predict(client, [None] * MAIN_MAX_BATCH_ITEMS) == [""] * MAIN_MAX_BATCH_ITEMS
    answers = predict(client, ["什么是CUDA？", None, "", "什么是warp？", None, "  "], **FAST)
    assert [bool(a) for a in answers] == [True, False, False, True, False, False], answers
    assert answers[0] == predict(client, "什么是CUDA？", **FAST)
    numbers = predict(client, [123, "123", 4.5, "4.5"], **FAST)  # numbers are stringified
    assert numbers[0] == numbers[1] and numbers[2] == numbers[3], numbers
    assert numbers[0], numbers


def test_long_prompt_in_batch_is_truncated_not_rejected(client: httpx.Client):
    unit = "CUDA的线程块（thread block）与共享内存（shared memory）有什么关系？"
    long_prompt = (unit * (50_000 // len(unit) + 1))[:50_000]
    assert len(long_prompt) == 50_000
    batch = question_set(10, prefix="长批")
    batch[3] = long_prompt
    before = read_metrics(client)
    answers = predict(client, batch, **FAST)
    after = read_metrics(client)
    assert all(a.strip() for a in answers), answers
    truncated = metric(after, "qa_truncated_prompts_total") - metric(
        before, "qa_truncated_prompts_total"
    )
    assert truncated == 1, truncated
    assert predict(client, long_prompt, **FAST).strip()  # alone, too


# --- bad input ------------------------------------------------------------------------------

BAD_BODIES: dict[str, tuple[dict[str, Any], int | set[int]]] = {
    "malformed-json": ({"content": b'{"prompt": "x"', "headers": JSON}, 422),
    "not-json": ({"content": b"prompt=x", "headers": JSON}, 422),
    "empty-body": ({"content": b"", "headers": JSON}, 422),
    "invalid-utf8": ({"content": b'{"prompt": "\xff"}', "headers": JSON}, {400, 422}),
    "missing-field": ({"json": {}}, 422),
    "only-overrides": ({"json": {"max_new_tokens": 8}}, 422),
    "prompt-null": ({"json": {"prompt": None}}, 422),
    "prompt-number": ({"json": {"prompt": 5}}, 422),
    "prompt-object": ({"json": {"prompt": {"text": "x"}}}, 422),
    "both-fields": ({"json": {"prompt": "a", "prompts": "b"}}, 422),
    "body-is-list": ({"json": ["什么是CUDA？"]}, 422),
    "temperature-negative": ({"json": {"prompt": "x", "temperature": -1}}, 422),
    "top-p-zero": ({"json": {"prompt": "x", "top_p": 0}}, 422),
    "top-k-negative": ({"json": {"prompt": "x", "top_k": -1}}, 422),
    "max-new-tokens-zero": ({"json": {"prompt": "x", "max_new_tokens": 0}}, 422),
    "max-new-tokens-huge": ({"json": {"prompt": "x", "max_new_tokens": 10**6}}, 422),
    "max-new-tokens-text": ({"json": {"prompt": "x", "max_new_tokens": "many"}}, 422),
    "too-many-items": ({"json": {"prompt": [None] * (MAIN_MAX_BATCH_ITEMS + 1)}}, 413),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_predict_body_gets_json_error(client: httpx.Client, case: str):
    kwargs, status = BAD_BODIES[case]
    assert_error(client.post("/predict", **kwargs), status)


def test_wrong_content_type_is_4xx(client: httpx.Client):
    body = json.dumps({"prompt": "什么是CUDA？"}).encode()
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        response = client.post("/predict", content=body, headers={"content-type": content_type})
        assert_error(response, {415, 422})


def test_get_predict_is_405(client: httpx.Client):
    assert_error(client.get("/predict"), 405)
    assert_error(client.put("/predict", json={"prompt": "x"}), 405)
    assert_error(client.get("/no/such/path"), 404)


def test_405_names_allowed_methods(client: httpx.Client):
    response = client.get("/predict")
    assert response.status_code == 405
    assert "POST" in response.headers.get("allow", "")


def test_oversized_body_is_413(client: httpx.Client):
    filler = "x" * (MAIN_MAX_BODY_BYTES + 1024)
    body = json.dumps({"prompt": filler}).encode()
    # with Content-Length: refused before the body is read
    assert_error(client.post("/predict", content=body, headers=JSON), 413)

    def chunks():  # chunked upload, no Content-Length: refused while counting
        for i in range(0, len(body), 64 * 1024):
            yield body[i : i + 64 * 1024]

    assert_error(client.post("/predict", content=chunks(), headers=JSON), 413)
    # just under the limit is served (the prompt is cut to fit the context, not refused)
    words = "cuda warp tile " * (MAIN_MAX_BODY_BYTES // 15)
    fits = json.dumps({"prompt": words[: MAIN_MAX_BODY_BYTES - 4096], **FAST}).encode()
    response = client.post("/predict", content=fits, headers=JSON)
    assert response.status_code == 200, response.text


def test_errors_are_counted(client: httpx.Client):
    before = read_metrics(client)
    assert_error(client.post("/predict", json={}), 422)
    after = read_metrics(client)
    key = {"endpoint": "/predict", "status": "422"}
    assert (
        metric(after, "qa_requests_total", **key) == metric(before, "qa_requests_total", **key) + 1
    )
    assert metric(after, "qa_items_total") == metric(before, "qa_items_total")


# --- system prompt ----------------------------------------------------------------------------


def test_system_prompt_local_admin_and_nonlocal(client: httpx.Client):
    question = {"prompt": "什么是CUDA？", **FAST}
    before = client.post("/predict", json=question).json()["response"]
    default = client.get("/system_prompt").json()
    assert default["is_default"] is True and default["system_prompt"], default
    custom = "You are a terse pirate. 只用英文回答。"
    # uvicorn trusts X-Forwarded-For from 127.0.0.1 (its default --forwarded-allow-ips), so
    # this header makes request.client a non-local address, as behind a reverse proxy.
    remote = {"x-forwarded-for": "203.0.113.9"}
    try:
        response = client.post("/system_prompt", json={"system_prompt": custom})
        assert response.status_code == 200, response.text
        assert response.json() == {"system_prompt": custom, "is_default": False}
        assert client.get("/system_prompt").json() == {"system_prompt": custom, "is_default": False}
        assert client.get("/info").json()["system_prompt"] == custom
        changed = client.post("/predict", json=question).json()["response"]
        assert changed != before, "the system prompt did not reach the model"

        for headers in (remote, {**remote, "authorization": "Bearer wrong-token"}):
            response = client.post("/system_prompt", json={"reset": True}, headers=headers)
            assert_error(response, 403)
            assert client.get("/system_prompt").json()["system_prompt"] == custom
        with_token = {**remote, "authorization": f"Bearer {ADMIN_TOKEN}"}
        response = client.post("/system_prompt", json={"system_prompt": "X"}, headers=with_token)
        assert response.status_code == 200, response.text
        assert response.json()["system_prompt"] == "X"

        for bad in ({}, {"system_prompt": 5}, {"system_prompt": "a", "extra": 1}, {"reset": 1.5}):
            assert_error(client.post("/system_prompt", json=bad), 422)
    finally:
        reset = client.post("/system_prompt", json={"reset": True})
    assert reset.status_code == 200, reset.text
    assert reset.json() == default
    assert client.post("/predict", json=question).json()["response"] == before
