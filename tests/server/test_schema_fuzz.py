"""Schema fuzzing: schemathesis cases from the app's own OpenAPI schema, in-process, fake engine.

    pytest tests/server/test_schema_fuzz.py -q -s     # ~15 s; prints the case table

Positive (schema-valid) and negative (schema-violating) cases for `/predict`, `/system_prompt`
and `/v1/chat/completions`: no 5xx, every 4xx in the one JSON error shape, and a 200 from
`/predict` has one answer per question.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.fake_engine import ADMIN_TOKEN, FakeEngine, assert_error_shape, fake_app
from tests.support.figures import ARTIFACTS, environment, write_json

MIN_TOTAL_CASES = 1000
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
# (method, path, examples, mode); /system_prompt POST last: it changes the system prompt.
# GET /system_prompt takes no input: no negative case exists, and few positive ones.
OPERATIONS = [
    ("POST", "/predict", 200, POSITIVE),
    ("POST", "/predict", 200, NEGATIVE),
    ("POST", "/v1/chat/completions", 200, POSITIVE),
    ("POST", "/v1/chat/completions", 200, NEGATIVE),
    ("GET", "/system_prompt", 5, POSITIVE),
    ("POST", "/system_prompt", 150, POSITIVE),
    ("POST", "/system_prompt", 150, NEGATIVE),
]
CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance]
CASES: dict[tuple[str, str, str], dict[int, int]] = {}  # (method, path, mode) -> status counts


@pytest.fixture(scope="module")
def schema(tiny_model_dir: Path) -> Iterator[Any]:
    app = fake_app(
        tiny_model_dir,
        FakeEngine(),
        admin_token=ADMIN_TOKEN,
        max_body_bytes=256 * 1024,
        max_batch_items=400,
        max_new_tokens=64,
    )
    yield schemathesis.openapi.from_asgi("/openapi.json", app)


def _operation(schema: Any, method: str, path: str) -> Any:
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() == method and operation.path == path:
            return operation
    raise AssertionError(f"{method} {path} is not in the OpenAPI schema")


def _check(case: Any, response: Any) -> None:
    status = response.status_code
    assert status < 500, f"{case.method} {case.path} -> {status}: {response.text[:300]}"
    if status >= 400:
        assert_error_shape(status, response.json())
        return
    body = case.body if isinstance(case.body, dict) else {}
    given_prompt = body.get("prompt", body.get("prompts"))
    if case.path == "/predict" and isinstance(given_prompt, list):
        assert len(response.json()["response"]) == len(given_prompt)


@pytest.mark.parametrize(
    ("method", "path", "examples", "mode"), OPERATIONS, ids=lambda v: getattr(v, "value", v)
)
def test_fuzz(schema: Any, method: str, path: str, examples: int, mode: GenerationMode) -> None:
    _fuzz(schema, method, path, examples, mode)


def _fuzz(schema: Any, method: str, path: str, examples: int, mode: GenerationMode) -> None:
    """Run one operation's cases, counting their statuses in CASES."""
    operation = _operation(schema, method, path)
    counts = CASES.setdefault((method, path, mode.value), {})

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,  # the same cases every run: a failure is reproducible
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        counts[response.status_code] = counts.get(response.status_code, 0) + 1
        _check(case, response)
        case.validate_response(response, checks=CONFORMANCE)  # statuses, types, bodies documented

    run()


def test_at_least_1000_cases_ran(schema: Any) -> None:
    """Counts the cases test_fuzz ran; the operations it did not run here (this test run
    alone, or with -k) run now, so the count is always of every operation."""
    for method, path, examples, mode in OPERATIONS:
        if (method, path, mode.value) not in CASES:
            _fuzz(schema, method, path, examples, mode)
    total = sum(sum(c.values()) for c in CASES.values())
    print(f"\nschemathesis cases: {total}")
    for (method, path, mode), counts in CASES.items():
        statuses = dict(sorted(counts.items()))
        print(f"  {method:4} {path:22} {mode:8} {sum(counts.values()):4}  {statuses}")
    operations = [
        {"method": m, "path": p, "mode": mode, "cases": sum(c.values()), "statuses": c}
        for (m, p, mode), c in CASES.items()
    ]
    server_errors = sum(n for c in CASES.values() for status, n in c.items() if status >= 500)
    record = {"total": total, "server_errors": server_errors, "operations": operations}
    write_json(ARTIFACTS, "fuzz", {**record, **environment()})  # for RELIABILITY.md
    assert total >= MIN_TOTAL_CASES, CASES
