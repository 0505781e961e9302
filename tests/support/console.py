"""The web console as users start it: `python webui.py` (or `bash start_webui.sh`) as a
subprocess in its own process group, on a free port, under a network guard.

    con = start_console("console", server_url, tmp_path, guard)   # returns once it answers 200
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

import httpx
import pytest

from qaserve.server.process import free_port
from tests.support.harness import NetGuard, Server, spawn

CONSOLE_READY_S = 180.0


def start_console(
    name: str,
    server_url: str,
    workdir: Path,
    guard: NetGuard,
    script: bool = False,
    **extra_env: str,
) -> Server:
    """`python webui.py` with flags (or `bash start_webui.sh` with WEBUI_* variables) on a
    free port, in its own process group, once it answers 200."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WEBUI_", "GRADIO_"))}
    env.update(extra_env)
    cmd = [sys.executable, "webui.py", "--server-url", server_url, "--port", str(port)]
    if script:  # as users start it; the script execs python, so the group stays one process
        cmd = ["bash", "start_webui.sh"]
        env.update(WEBUI_SERVER_URL=server_url, WEBUI_PORT=str(port))
    console = spawn(name, workdir, guard.env(env), cmd, port=port)
    deadline = console.process.started + CONSOLE_READY_S
    while console.proc.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(console.url + "/", timeout=5).status_code == 200:  # Gradio's page
                return console
        time.sleep(0.5)
    console.stop()
    pytest.fail(f"{name} not up (exit {console.proc.returncode}):\n{console.log_tail()}")
