"""Run `uvicorn serve:app` as a subprocess in its own process group, wait until `GET /` answers,
and stop the whole group (vLLM's EngineCore and workers included), leaving no orphan.

    python -m qaserve.server.process --env MODEL_DIR=model/x --log /tmp/server.log

The tools that start servers (the tuner, bench/bench_server.py) go through `start_server`.
A port someone else listens on is never touched here unless `kill_port_owners` is called.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qaserve import client as http
from qaserve.paths import REPO_ROOT as ROOT

log = logging.getLogger(__name__)

STOP_GRACE_S = 30.0
KILL_WAIT_S = 10.0
PR_SET_PDEATHSIG = 1


class ServerStartError(RuntimeError):
    """The server exited (or never answered) before it was ready; `log_tail` ends its log."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


class ServerStartTimeout(ServerStartError):
    """`GET /` did not answer 200 within the start timeout."""


@dataclass
class StopReport:
    returncode: int | None
    seconds: float
    killed: bool  # SIGTERM was not enough
    left: list[int]  # processes of the group still alive at the end (should be empty)
    port_free: bool
    left_after_term: list[int] = field(default_factory=list)  # alive when the grace ran out


@dataclass
class ServerProcess:
    """One server process group started by `start_server`."""

    proc: subprocess.Popen[bytes]
    host: str
    port: int
    log_path: Path
    started: float = field(default_factory=time.monotonic)
    stop_report: StopReport | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # where to connect
        return f"http://{host}:{self.port}"

    @property
    def pgid(self) -> int:
        return self.proc.pid  # start_new_session: the leader's pid is the group id

    def running(self) -> bool:
        return self.proc.poll() is None

    def members(self) -> list[int]:
        return group_members(self.pgid)

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def record(self) -> dict[str, Any]:
        """What a later process needs to find and stop this group (see `stop_recorded`)."""
        return {
            "pid": self.proc.pid,
            "pgid": self.pgid,
            "start_ticks": start_ticks(self.proc.pid),
            "port": self.port,
            "log": str(self.log_path),
        }

    def wait_ready(self, timeout_s: float, interval_s: float = 0.5) -> float:
        """Poll `GET /` until 200; seconds since the start. Raises ServerStartError when the
        process exits first, ServerStartTimeout after `timeout_s`."""
        deadline = self.started + timeout_s
        with http.make_client(5.0, connections=1) as session:
            while True:
                if not self.running():
                    code = self.proc.returncode
                    raise ServerStartError(
                        f"server exited with {code} before ready", self.log_tail()
                    )
                try:
                    http.health(self.url, timeout_s=5.0, client=session)
                    return time.monotonic() - self.started
                except http.ClientError:
                    pass
                if time.monotonic() + interval_s > deadline:
                    raise ServerStartTimeout(
                        f"server not ready after {timeout_s:g} s", self.log_tail()
                    )
                time.sleep(interval_s)

    def stop(self, grace_s: float = STOP_GRACE_S) -> StopReport:
        """SIGTERM the group, SIGKILL what is left after `grace_s`, wait for the port."""
        if self.stop_report is not None:
            return self.stop_report
        start = time.monotonic()
        _signal_group(self.pgid, signal.SIGTERM)
        gone = _wait_gone(self.proc, self.pgid, grace_s)
        left_after_term = [] if gone else (self.members() or [self.proc.pid])
        if not gone:
            log.warning(
                "server group %d still up %.0f s after SIGTERM: SIGKILL", self.pgid, grace_s
            )
            _signal_group(self.pgid, signal.SIGKILL)
            _wait_gone(self.proc, self.pgid, KILL_WAIT_S)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(KILL_WAIT_S)
        port_free = wait_port_free(self.port, self.host, KILL_WAIT_S)
        self.stop_report = StopReport(
            self.proc.returncode,
            round(time.monotonic() - start, 1),
            not gone,
            self.members(),
            port_free,
            left_after_term,
        )
        log.info("server on port %d stopped: %s", self.port, self.stop_report)
        return self.stop_report

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    env: dict[str, str],
    log_path: Path,
    *,
    port: int | None = None,
    host: str = "127.0.0.1",
    app: str = "serve:app",
    cwd: Path = ROOT,
    append_log: bool = False,
    die_with_parent: bool = True,
    cmd: list[str] | None = None,
) -> ServerProcess:
    """Spawn `python -m uvicorn APP` with exactly `env` on `port` (a free one when None).

    `cmd` replaces that command line (`python serve.py`, which reads HOST and PORT from `env`;
    `python webui.py --port ...`): `host` and `port` then only say where it will listen.
    With `die_with_parent` the server gets SIGTERM if this process dies (even by SIGKILL), so a
    killed tool leaves no server holding the GPU."""
    port = port or free_port(host)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if cmd is None:
        cmd = [sys.executable, "-m", "uvicorn", app, "--host", host, "--port", str(port)]
    parent = os.getpid()
    with open(log_path, "ab" if append_log else "wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=(lambda: _die_with(parent)) if die_with_parent else None,
        )
    log.info("server pid %d starting on port %d (log %s)", proc.pid, port, log_path)
    return ServerProcess(proc, host, port, log_path)


def _die_with(parent: int) -> None:
    """In the child before exec: ask Linux for SIGTERM when the parent dies."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _wait_gone(proc: subprocess.Popen[bytes] | None, pgid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        leader_done = proc is None or proc.poll() is not None
        if leader_done and not group_members(pgid):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


# --- processes and ports, from /proc -------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp ...


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields and len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
                pids.append(int(entry.name))
    return sorted(pids)


def stop_recorded(record: dict[str, Any], grace_s: float = STOP_GRACE_S) -> list[int]:
    """Stop a group that `ServerProcess.record()` described in an earlier (killed) process.

    Linux never reuses a pid while a process group of that id exists, so live members of the
    group are that server's; a live leader with another start time is someone else's process."""
    pgid = int(record["pgid"])
    leader_ticks = start_ticks(pgid)
    if leader_ticks is not None and leader_ticks != record.get("start_ticks"):
        return []
    members = group_members(pgid)
    if not members:
        return []
    log.warning(
        "stopping leftover server group %d (port %s): %s", pgid, record.get("port"), members
    )
    _signal_group(pgid, signal.SIGTERM)
    if not _wait_gone(None, pgid, grace_s):
        _signal_group(pgid, signal.SIGKILL)
        _wait_gone(None, pgid, KILL_WAIT_S)
    return members


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on, below the kernel's ephemeral range: uvicorn binds only after
    the engine has loaded, and meanwhile vLLM's own sockets take ephemeral ports (bind to port
    0), which once took a port picked from that range (a failed tuner trial)."""
    low = _ephemeral_low()
    for _ in range(50):
        port = random.randrange(max(1024, low - 12000), low)
        if port_free(port, host):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could bind `host:port` now (nobody listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_port_free(
    port: int,
    host: str = "127.0.0.1",
    timeout_s: float | None = None,
    on_wait: Callable[[float], None] | None = None,
    interval_s: float = 1.0,
) -> bool:
    """Wait (forever when `timeout_s` is None) until the port is free; `on_wait(waited_s)`
    is called about once a minute while waiting."""
    start = time.monotonic()
    reported = 0.0
    while not port_free(port, host):
        waited = time.monotonic() - start
        if timeout_s is not None and waited >= timeout_s:
            return False
        if on_wait is not None and waited - reported >= 60:
            on_wait(waited)
            reported = waited
        time.sleep(interval_s)
    return True


def port_owners(port: int) -> list[int]:
    """Pids of the processes listening on TCP `port` (those this user may inspect)."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 9 and cols[3] == "0A" and int(cols[1].split(":")[1], 16) == port:
                    inodes.add(f"socket:[{cols[9]}]")
    owners = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and inodes:
            with contextlib.suppress(OSError):
                if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                    owners.add(int(entry.name))
    return sorted(owners)


def kill_port_owners(port: int, grace_s: float = STOP_GRACE_S) -> list[int]:
    """SIGTERM (then SIGKILL) whoever listens on `port`, never this process: only on request."""
    owners = [pid for pid in port_owners(port) if pid != os.getpid()]
    for pid in owners:
        log.warning("killing pid %d (%s), which listens on port %d", pid, describe(pid), port)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in owners):
        time.sleep(0.2)
    for pid in owners:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return owners


def describe(pid: int) -> str:
    """`pid`'s command line, shortened (for log lines about other processes)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except OSError:
        return "?"


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(line[:400] for line in text.splitlines()[-lines:])


def main(argv: list[str] | None = None) -> int:
    """Start a server with extra env (KEY=VALUE), wait until ready, print its /info, stop it."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--log", type=Path, default=Path("server.log"))
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    env = {**os.environ, **dict(kv.split("=", 1) for kv in args.env)}
    with start_server(env, args.log, port=args.port) as server:
        try:
            print(f"ready after {server.wait_ready(args.timeout):.1f} s at {server.url}")
        except ServerStartError as exc:
            print(f"{exc}\n{exc.log_tail}")
            return 1
        with http.make_client(10.0) as session:
            print(session.get(server.url + "/info").text)
    print(f"stopped: {server.stop_report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
