"""Helpers shared by the end-to-end tests (fixtures live in conftest.py)."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

ERROR_TYPES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
}
MetricKey = tuple[str, tuple[tuple[str, str], ...]]


def question_set(count: int, prefix: str = "问题") -> list[str]:
    """Distinct short questions (the budget rules classify them as short)."""
    return [f"{prefix}{i}：什么是CUDA的第{i}个特性？" for i in range(count)]


def predict(client: httpx.Client, prompt: Any, **overrides: Any) -> Any:
    """POST /predict, assert 200 and the response's shape; return `response`."""
    response = client.post("/predict", json={"prompt": prompt, **overrides})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"response"}, body
    answer = body["response"]
    if isinstance(prompt, list):
        assert isinstance(answer, list), body
        assert len(answer) == len(prompt)
        assert all(isinstance(a, str) for a in answer), answer
    else:
        assert isinstance(answer, str), body
    return answer


def assert_error(response: httpx.Response, status: int | set[int]) -> dict[str, Any]:
    """The response is `status` (or one of them) with the one JSON error shape; return it."""
    allowed = {status} if isinstance(status, int) else status
    assert response.status_code in allowed, (response.status_code, response.text)
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) >= {"message", "type", "code"}, error
    assert isinstance(error["message"], str) and error["message"].strip(), error
    assert error["code"] == response.status_code, error
    expected_type = ERROR_TYPES.get(response.status_code)
    if expected_type is not None:
        assert error["type"] == expected_type, error
    return error


def read_metrics(client: httpx.Client) -> dict[MetricKey, float]:
    """Every sample of /metrics, keyed by (sample name, sorted labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    samples: dict[MetricKey, float] = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def metric(samples: dict[MetricKey, float], name: str, **labels: str) -> float:
    """One sample's value; 0.0 if the series does not exist yet (counters start at 0)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
