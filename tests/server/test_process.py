"""qaserve/server/process.py on a fake ASGI app (tests/support/fake_app.py, no engine): readiness,
the whole process group stopped (SIGKILL when SIGTERM is ignored), the port freed, start errors,
a server that dies with its parent, a leftover group stopped later, busy ports.

    pytest tests/server/test_process.py -q
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from qaserve.server import process as sp
from qaserve.tuning.config import TuneConfig
from qaserve.tuning.trial import PortBusy, _port

APP = "tests.support.fake_app:app"


def start(tmp_path: Path, mode: str = "ok", **kwargs: Any) -> sp.ServerProcess:
    env = {**os.environ, "FAKE_APP_MODE": mode}
    return sp.start_server(env, tmp_path / f"{mode}.log", app=APP, **kwargs)


def wait_gone(pgid: int, seconds: float = 30) -> list[int]:
    deadline = time.monotonic() + seconds
    while sp.group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    return sp.group_members(pgid)


def test_ready_then_whole_group_stopped(tmp_path: Path) -> None:
    with start(tmp_path) as server:
        assert server.wait_ready(60) > 0
        assert len(server.members()) >= 2  # uvicorn and its child
        record = server.record()
        assert record["pgid"] == server.proc.pid and record["start_ticks"]
    report = server.stop_report
    assert report and not report.killed and report.left == [] and report.port_free
    assert sp.port_free(server.port) and server.stop() is report  # idempotent


def test_sigkill_when_sigterm_is_not_enough(tmp_path: Path) -> None:
    server = start(tmp_path, "stubborn")
    server.wait_ready(60)
    report = server.stop(grace_s=2)
    assert report.killed and report.left == [] and report.port_free


def test_start_errors_carry_the_log_tail(tmp_path: Path) -> None:
    with pytest.raises(sp.ServerStartError, match="exited") as crashed:
        start(tmp_path, "crash").wait_ready(60)
    assert "crashing at import" in crashed.value.log_tail
    server = start(tmp_path, "never_ready")
    try:
        with pytest.raises(sp.ServerStartTimeout, match="not ready after 3 s"):
            server.wait_ready(3)
    finally:
        assert server.stop().left == []


PARENT = """
import json, os, sys, time
from pathlib import Path
from qaserve.server.process import start_server
server = start_server({**os.environ, "FAKE_APP_MODE": "ok"}, Path(sys.argv[1]),
                      app="tests.support.fake_app:app", die_with_parent=sys.argv[2] == "1")
server.wait_ready(60)
print(json.dumps(server.record()), flush=True)
time.sleep(600)
"""


def orphan(tmp_path: Path, die_with_parent: bool) -> dict[str, Any]:
    """Start a server from a parent process, SIGKILL the parent; the server's record."""
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(tmp_path / "s.log"), "1" if die_with_parent else "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=sp.ROOT,
    )
    assert parent.stdout is not None
    record = json.loads(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    return record


def test_server_dies_with_its_parent(tmp_path: Path) -> None:
    record = orphan(tmp_path, die_with_parent=True)
    assert wait_gone(record["pgid"]) == []
    assert sp.wait_port_free(record["port"], timeout_s=10)


def test_leftover_group_is_stopped_from_its_record(tmp_path: Path) -> None:
    record = orphan(tmp_path, die_with_parent=False)
    try:
        time.sleep(1)
        assert sp.group_members(record["pgid"])  # survived its parent
        assert sp.stop_recorded({**record, "start_ticks": 1}) == []  # not ours: left alone
        assert sp.group_members(record["pgid"])
        assert sp.stop_recorded(record, grace_s=10)
        assert sp.group_members(record["pgid"]) == []
    finally:
        if sp.group_members(record["pgid"]):
            os.killpg(record["pgid"], signal.SIGKILL)


@pytest.mark.slow
def test_busy_port_is_waited_for_or_its_owner_killed(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not sp.port_free(port) and os.getpid() in sp.port_owners(port)
        assert not sp.wait_port_free(port, timeout_s=1)
        cfg = TuneConfig(TUNE_PORT=port, TUNE_PORT_WAIT=1)
        with pytest.raises(PortBusy, match=f"port {port} still busy"):
            _port(cfg, lambda phase, record: None)
        assert sp.kill_port_owners(port) == []  # never this process itself
    assert sp.port_free(port)
    listener = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, time; s = socket.socket(); "
            f"s.bind(('127.0.0.1', {port})); s.listen(); print('up', flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert listener.stdout is not None and listener.stdout.readline().strip() == "up"
    cfg = TuneConfig(TUNE_PORT=port, TUNE_KILL_PORT_OWNER=True, STOP_TIMEOUT=5)
    assert _port(cfg, lambda phase, record: None) == port  # --kill-port-owner: it is freed
    assert listener.wait(10) is not None


def test_free_port_is_bindable_and_below_the_ephemeral_range() -> None:
    """vLLM's sockets bind port 0 (ephemeral) while the server loads; ours never compete."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {sp.free_port() for _ in range(20)}
    assert all(1024 <= p < low for p in ports), ports
    port = ports.pop()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))  # free indeed
        s.listen()
        assert not sp.port_free(port)
