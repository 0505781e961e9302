"""Fixtures of the unit tests: the fake grader-contract server (tests/support/fake_grader.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_grader import FakeServer, serve_fake


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeServer]:
    with serve_fake() as state:
        yield state


@pytest.fixture
def fake(fake_server: FakeServer) -> FakeServer:
    fake_server.status, fake_server.not_ready = "batch", 0
    fake_server.posts.clear()
    return fake_server
