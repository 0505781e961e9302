"""Fixtures of the API tests: the app in-process (lifespan run) on a fake engine.

pytest tests/api -q -m "not engine"
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.fake_engine import (
    SHARED_SETTINGS,
    ClientFactory,
    FakeEngine,
    clear_settings_env,
    fake_app,
)


@pytest.fixture(autouse=True)
def _no_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings_env(monkeypatch)


@pytest.fixture
def make_client(tiny_model_dir: Path) -> Iterator[ClientFactory]:
    """`make_client(client=(host, port), raise_server_exceptions=True, **settings)`: a started
    app (lifespan run) on a new fake engine; returns (client, fake)."""
    started: list[TestClient] = []

    def make(
        client: tuple[str, int] = ("testclient", 50000),
        raise_server_exceptions: bool = True,
        **overrides: Any,
    ) -> Any:
        fake = FakeEngine()
        app = fake_app(tiny_model_dir, fake, **overrides)
        test_client = TestClient(
            app, client=client, raise_server_exceptions=raise_server_exceptions
        )
        test_client.__enter__()
        started.append(test_client)
        return test_client, fake

    yield make
    for test_client in reversed(started):
        test_client.__exit__(None, None, None)


@pytest.fixture(scope="session")
def _shared(tiny_model_dir: Path) -> Iterator[tuple[TestClient, FakeEngine]]:
    fake = FakeEngine()
    app = fake_app(tiny_model_dir, fake, **SHARED_SETTINGS)
    with TestClient(app) as test_client:
        yield test_client, fake


@pytest.fixture
def shared(_shared: tuple[TestClient, FakeEngine]) -> tuple[TestClient, FakeEngine]:
    """One started app (SHARED_SETTINGS) for the tests that need nothing special; the fake is
    reset for each test, the app's metrics are not (compare before and after)."""
    _shared[1].reset()
    return _shared


@pytest.fixture
def client(shared: tuple[TestClient, FakeEngine]) -> TestClient:
    return shared[0]


@pytest.fixture
def fake(shared: tuple[TestClient, FakeEngine]) -> FakeEngine:
    return shared[1]
