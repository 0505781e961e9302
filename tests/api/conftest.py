"""Fixtures of the API tests: the app in-process (lifespan run) on a fake engine.

pytest tests/api -q -m "not engine"
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from qaserve.server.app import create_app
from qaserve.settings import load_settings
from tests.api.fake_engine import FakeEngine, clear_settings_env

ClientFactory = Callable[..., tuple[TestClient, FakeEngine]]
SHARED_SETTINGS: dict[str, Any] = {
    "admin_token": "s3cret-admin-token",
    "short_max_new_tokens": 11,
    "long_max_new_tokens": 22,
    "code_max_new_tokens": 33,
    "max_new_tokens": 64,
    "max_batch_items": 400,
    "max_body_bytes": 64 * 1024,
}


@pytest.fixture(autouse=True)
def _no_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_settings_env(monkeypatch)


def _fake_app(model_dir: Path, fake: FakeEngine, **overrides: Any) -> Any:
    settings = load_settings(**{"model_dir": model_dir, "warmup": False, **overrides})
    return create_app(
        settings, engine_factory=lambda s, d, tok: fake.attach(tok), exit_on_engine_death=False
    )


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
        app = _fake_app(tiny_model_dir, fake, **overrides)
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
    with pytest.MonkeyPatch.context() as mp:
        clear_settings_env(mp)
        app = _fake_app(tiny_model_dir, fake, **SHARED_SETTINGS)
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
