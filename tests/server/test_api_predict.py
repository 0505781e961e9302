"""`POST /predict` in-process on a fake engine: the grader's contract, budgets, overrides, errors.

pytest tests/server/test_api_predict.py -q
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from qaserve.defaults import DEFAULT_SYSTEM_PROMPT
from tests.support.fake_engine import (
    SHARED_SETTINGS,
    ClientFactory,
    FakeEngine,
    assert_error,
    metric,
)


def _answer(question: str) -> str:
    return f"answer to {question}"


def test_single_prompt_gets_a_string(client: TestClient, fake: FakeEngine) -> None:
    r = client.post("/predict", json={"prompt": "什么是CUDA？"})
    assert r.status_code == 200
    assert r.json() == {"response": _answer("什么是CUDA？")}
    assert fake.last.questions == ["什么是CUDA？"]


def test_batch_keeps_count_and_order_in_one_engine_call(
    client: TestClient, fake: FakeEngine
) -> None:
    questions = [f"第{i}题：什么是warp {i}？" for i in range(358)]
    r = client.post("/predict", json={"prompt": questions})
    assert r.status_code == 200
    assert r.json() == {"response": [_answer(q) for q in questions]}
    # the whole batch goes to the engine at once (no per-budget rounds, no per-item calls)
    assert len(fake.calls) == 1
    assert fake.last.questions == questions


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"prompts": "什么是SIMT？"}, _answer("什么是SIMT？")),
        ({"prompts": ["a", "b"]}, [_answer("a"), _answer("b")]),
        ({"prompt": ["only one"]}, [_answer("only one")]),
        ({"prompt": []}, []),
        ({"prompt": ""}, ""),
    ],
)
def test_shapes_and_alias(client: TestClient, body: dict[str, Any], expected: Any) -> None:
    r = client.post("/predict", json=body)
    assert r.status_code == 200
    assert r.json() == {"response": expected}


def test_blank_null_and_number_items(client: TestClient, fake: FakeEngine) -> None:
    r = client.post("/predict", json={"prompt": [None, "", "  ", 42, 2.5, "q"]})
    assert r.status_code == 200
    assert r.json()["response"] == ["", "", "", _answer("42"), _answer("2.5"), _answer("q")]
    assert fake.last.questions == ["42", "2.5", "q"]  # blanks never reach the engine


def test_failing_item_becomes_empty_and_is_counted(client: TestClient) -> None:
    failed, empty = (
        metric(client, "qa_failed_items_total"),
        metric(client, "qa_empty_answers_total"),
    )
    questions = ["first", "second BOOM", "third", "fourth BOOM"]
    r = client.post("/predict", json={"prompt": questions})
    assert r.status_code == 200
    assert r.json()["response"] == [_answer("first"), "", _answer("third"), ""]
    assert metric(client, "qa_failed_items_total") == failed + 2
    assert metric(client, "qa_empty_answers_total") == empty + 2


def test_engine_exception_still_answers_every_question(make_client: ClientFactory) -> None:
    client, fake = make_client(raise_server_exceptions=False)
    fake.crash = RuntimeError("engine fell over")
    r = client.post("/predict", json={"prompt": ["a", "b", "c"]})
    assert r.status_code == 200, r.text
    assert r.json() == {"response": ["", "", ""]}
    assert metric(client, "qa_failed_items_total") == 3


def test_items_counters_move(client: TestClient) -> None:
    items, answer_chars = metric(client, "qa_items_total"), metric(client, "qa_answer_chars_total")
    client.post("/predict", json={"prompt": ["x", "yy"]})
    assert metric(client, "qa_items_total") == items + 2
    expected_chars = len(_answer("x")) + len(_answer("yy"))
    assert metric(client, "qa_answer_chars_total") == answer_chars + expected_chars


def test_deadline_cuts_answers_but_keeps_the_count(make_client: ClientFactory) -> None:
    client, fake = make_client(predict_deadline_s=0.5)
    fake.delay_s = 30.0
    before = metric(client, "qa_deadline_cut_items_total")
    start = time.monotonic()
    r = client.post("/predict", json={"prompt": ["a long one", "another one", "x"]})
    took = time.monotonic() - start
    assert r.status_code == 200
    answers = r.json()["response"]
    assert len(answers) == 3
    assert answers[0] == _answer("a long one")[: len(_answer("a long one")) // 2].strip()
    assert took < 10
    call = fake.last
    assert call.deadline is not None
    assert 0 < call.deadline - call.at <= 0.5
    assert metric(client, "qa_deadline_cut_items_total") == before + 3


def test_budget_per_question_kind_reaches_the_engine(client: TestClient, fake: FakeEngine) -> None:
    questions = ["什么是CUDA？", "请详细解释tiling的原理。", "请写出向量加法的CUDA代码。"]
    assert client.post("/predict", json={"prompt": questions}).status_code == 200
    budgets = [p.max_new_tokens for p in fake.last.params]
    expected = [SHARED_SETTINGS[f"{kind}_max_new_tokens"] for kind in ("short", "long", "code")]
    assert budgets == expected


def test_budgets_are_capped_by_max_new_tokens(make_client: ClientFactory) -> None:
    client, fake = make_client(max_new_tokens=20, short_max_new_tokens=11)
    questions = ["什么是CUDA？", "请详细解释tiling的原理。", "请写出向量加法的CUDA代码。"]
    assert client.post("/predict", json={"prompt": questions}).status_code == 200
    assert [p.max_new_tokens for p in fake.last.params] == [11, 20, 20]


def test_request_overrides_reach_gen_params(client: TestClient, fake: FakeEngine) -> None:
    overrides = {
        "max_new_tokens": 5,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 7,
        "repetition_penalty": 1.1,
        "frequency_penalty": 0.5,
    }
    questions = ["什么是CUDA？", "请写出向量加法的CUDA代码。"]
    r = client.post("/predict", json={"prompt": questions, **overrides})
    assert r.status_code == 200
    for params in fake.last.params:
        assert {k: getattr(params, k) for k in overrides} == overrides


def test_unset_overrides_keep_the_settings(client: TestClient, fake: FakeEngine) -> None:
    client.post("/predict", json={"prompt": "q", "temperature": None})
    params = fake.last.params[0]
    assert (params.temperature, params.top_p, params.top_k) == (0.0, 1.0, 0)


def test_huge_max_new_tokens_is_capped_by_the_context(client: TestClient, fake: FakeEngine) -> None:
    client.post("/predict", json={"prompt": "q", "max_new_tokens": 32768})
    params = fake.last.params[0]
    assert 1 <= params.max_new_tokens < 4096  # MAX_MODEL_LEN's default; room left for the prompt


def test_system_prompt_is_in_every_prompt(client: TestClient, fake: FakeEngine) -> None:
    client.post("/predict", json={"prompt": ["a", "b"]})
    assert all(DEFAULT_SYSTEM_PROMPT in prompt for prompt in fake.last.prompts)


def test_concurrent_requests_are_not_serialised(client: TestClient, fake: FakeEngine) -> None:
    fake.delay_s = 1.0
    results: dict[int, Any] = {}
    barrier = threading.Barrier(2)

    def post(n: int) -> None:
        barrier.wait()
        results[n] = client.post("/predict", json={"prompt": [f"q{n}"]})

    threads = [threading.Thread(target=post, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert [results[n].json()["response"] for n in (1, 2)] == [[_answer("q1")], [_answer("q2")]]
    assert fake.max_active == 2


# --- invalid input: 4xx, one error shape, the engine never called ---------------------------

INVALID_BODIES = {
    "missing field": {},
    "null field": {"prompt": None},
    "both fields": {"prompt": "a", "prompts": "b"},
    "object prompt": {"prompt": {"text": "a"}},
    "body is a list": ["a", "b"],
    "body is a string": "a",
    "max_new_tokens 0": {"prompt": "a", "max_new_tokens": 0},
    "max_new_tokens huge": {"prompt": "a", "max_new_tokens": 10**6},
    "max_new_tokens text": {"prompt": "a", "max_new_tokens": "many"},
    "temperature < 0": {"prompt": "a", "temperature": -0.1},
    "temperature > 5": {"prompt": "a", "temperature": 6},
    "top_p 0": {"prompt": "a", "top_p": 0},
    "top_p > 1": {"prompt": "a", "top_p": 1.5},
    "top_k < 0": {"prompt": "a", "top_k": -1},
    "repetition_penalty 0": {"prompt": "a", "repetition_penalty": 0},
    "frequency_penalty > 2": {"prompt": "a", "frequency_penalty": 3},
}


@pytest.mark.parametrize("body", INVALID_BODIES.values(), ids=INVALID_BODIES.keys())
def test_invalid_body_is_422(client: TestClient, fake: FakeEngine, body: Any) -> None:
    error = assert_error(client.post("/predict", json=body), 422)
    assert error["type"] == "invalid_request"
    assert not fake.calls


def test_messages_name_the_problem(client: TestClient) -> None:
    missing = assert_error(client.post("/predict", json={}), 422)["message"]
    assert "prompt" in missing
    both = assert_error(client.post("/predict", json={"prompt": "a", "prompts": "b"}), 422)
    assert "either" in both["message"]
    hot = assert_error(client.post("/predict", json={"prompt": "a", "temperature": 9}), 422)
    assert "temperature" in hot["message"]


@pytest.mark.parametrize(
    "content", ['{"prompt": ', "{'prompt': 'single quotes'}", "not json at all", ""]
)
def test_malformed_json_is_422(client: TestClient, fake: FakeEngine, content: str) -> None:
    r = client.post("/predict", content=content, headers={"content-type": "application/json"})
    error = assert_error(r, 422)
    assert content == "" or "JSON" in error["message"]
    assert not fake.calls


def test_non_json_content_type_is_422(client: TestClient) -> None:
    r = client.post("/predict", content="prompt=a", headers={"content-type": "text/plain"})
    assert_error(r, 422)


def test_too_many_items_is_413(client: TestClient, fake: FakeEngine) -> None:
    too_many = SHARED_SETTINGS["max_batch_items"] + 1
    error = assert_error(client.post("/predict", json={"prompt": ["q"] * too_many}), 413)
    assert "MAX_BATCH_ITEMS" in error["message"]
    assert error["type"] == "too_large"
    assert not fake.calls
    at_limit = client.post("/predict", json={"prompt": ["q"] * (too_many - 1)})
    assert at_limit.status_code == 200


def _big_body() -> bytes:
    return b'{"prompt": "' + b"a" * SHARED_SETTINGS["max_body_bytes"] + b'"}'


def test_body_over_limit_with_content_length_is_413(client: TestClient, fake: FakeEngine) -> None:
    r = client.post("/predict", content=_big_body(), headers={"content-type": "application/json"})
    assert r.request.headers.get("content-length") == str(len(_big_body()))
    assert_error(r, 413)
    assert not fake.calls


def test_body_over_limit_without_content_length_is_413(
    client: TestClient, fake: FakeEngine
) -> None:
    body = _big_body()

    def chunks() -> Any:  # a generator body is sent chunked, with no Content-Length
        for i in range(0, len(body), 4096):
            yield body[i : i + 4096]

    r = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_error(r, 413)
    assert not fake.calls


def test_rejected_bodies_are_counted_in_metrics(client: TestClient) -> None:
    label = 'qa_requests_total{endpoint="/predict",status="413"}'
    before = metric(client, label)
    client.post("/predict", content=_big_body(), headers={"content-type": "application/json"})
    assert metric(client, label) == before + 1


def test_chunked_body_under_limit_is_answered(client: TestClient) -> None:
    def chunks() -> Any:
        yield b'{"prompt": '
        yield b'["a", "b"]}'

    r = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 200
    assert r.json() == {"response": [_answer("a"), _answer("b")]}


@pytest.mark.parametrize(
    ("method", "path", "status"), [("GET", "/predict", 405), ("GET", "/nope", 404)]
)
def test_routing_errors_share_the_shape(
    client: TestClient, method: str, path: str, status: int
) -> None:
    r = client.request(method, path)
    assert_error(r, status)
    if status == 405:
        assert "POST" in r.headers["allow"]
