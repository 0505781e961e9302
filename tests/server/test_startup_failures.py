"""A server that cannot serve says why and exits within seconds, as users start it
(`python serve.py`): a busy port, a MODEL_DIR without a model. No engine starts.

    pytest tests/server/test_startup_failures.py -q
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.harness import REPO, server_env

LIMIT_S = 30.0  # issue 17: "exits non-zero within 30 s"


def run_serve(env: dict[str, str], *args: str) -> tuple[int, str, float]:
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "serve.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=LIMIT_S * 2,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def busy_port() -> Iterator[int]:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    yield holder.getsockname()[1]
    holder.close()


def test_a_busy_port_stops_the_start_naming_port_and_owner(
    busy_port: int, tiny_model_dir: Path
) -> None:
    env = server_env(tiny_model_dir, HOST="127.0.0.1")
    status, output, seconds = run_serve(env, "--port", str(busy_port))
    assert status != 0 and seconds < LIMIT_S, (status, seconds)
    assert f"cannot listen on 127.0.0.1:{busy_port}" in output, output
    assert f"pid {os.getpid()}" in output  # the process that holds it (this test)
    assert "Traceback" not in output


def test_a_model_dir_without_a_model_stops_the_start_naming_it(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    missing = tmp_path / "nonexistent"
    env = server_env(tiny_model_dir, MODEL_DIR=str(missing), HOST="127.0.0.1")
    status, output, seconds = run_serve(env, "--port", str(free_port()))
    assert status != 0 and seconds < LIMIT_S, (status, seconds)
    assert f"cannot serve: MODEL_DIR={missing} does not exist" in output, output


def test_an_invalid_setting_is_one_line_naming_the_variable(tiny_model_dir: Path) -> None:
    env = server_env(tiny_model_dir, MAX_MODEL_LEN="ten")
    status, output, _ = run_serve(env, "--port", str(free_port()))
    assert status != 0 and "MAX_MODEL_LEN" in output and "Traceback" not in output, output
