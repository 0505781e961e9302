"""Starting and stopping the real server as users do, and the network guard.

    srv = start_server("main", tmp_path, server_env(tiny_model_dir))   # uvicorn serve:app

`python -m uvicorn serve:app` runs as a subprocess in its own process group (vLLM spawns
EngineCore and worker children), with its output in a log file; the tail of that log is
attached to any failing test that used the server (tests/conftest.py). A server started with
`NetGuard.env(env)` runs under the network guard: a `sitecustomize.py` on its PYTHONPATH
(inherited by vLLM's children) records every attempt to reach a non-loopback address and
refuses it, as the grader's offline run stage would.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from qaserve.paths import REPO_ROOT
from qaserve.server import process as sp
from qaserve.settings import Settings
from tests.support.markers import require

REPO = REPO_ROOT
READY_TIMEOUT_S = 240.0
STOP_GRACE_S = 30.0
ADMIN_TOKEN = "e2e-admin-token"
MAIN_MAX_BODY_BYTES = 1024 * 1024  # small, so the 413 tests send ~1 MiB instead of 32 MiB
MAIN_MAX_BATCH_ITEMS = 1000
# Variables that would change the server under test if the developer's shell exported them.
_SCRUBBED = {name.upper() for name in Settings.model_fields} | {"FORWARDED_ALLOW_IPS"}

SITECUSTOMIZE = r'''
"""e2e network guard (tests/support/harness.py): refuse and record non-loopback connections."""
import errno as _errno
import ipaddress as _ipaddress
import os as _os
import socket as _socket

_LOG = _os.environ.get("QA_E2E_NET_LOG")
_SEEN = _os.environ.get("QA_E2E_SITE_SEEN")
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def _append(path, line):
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line.replace("\n", "\\n") + "\n")
    except OSError:
        pass


def _cmdline():
    try:
        with open("/proc/self/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")[:160]
    except OSError:
        return "?"


def _host_is_local(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    host = host.split("%", 1)[0].strip("[]")
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        ip = _ipaddress.ip_address(host)
    except ValueError:
        return False  # a name other than localhost: resolving it may already leave the machine
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    return ip.is_loopback or ip.is_unspecified  # connect() to 0.0.0.0 reaches this host


def _check(family, address, what):
    if family not in (_socket.AF_INET, _socket.AF_INET6):
        return  # AF_UNIX, netlink, ...: not the network
    host = address[0] if isinstance(address, tuple) and address else address
    if _host_is_local(host):
        return
    _append(_LOG, "%d %s %r (%s)" % (_os.getpid(), what, address, _cmdline()))
    raise OSError(_errno.ENETUNREACH, "e2e network guard: %s %r refused" % (what, address))


_connect = _socket.socket.connect
_connect_ex = _socket.socket.connect_ex
_sendto = _socket.socket.sendto
_create_connection = _socket.create_connection


def connect(self, address):
    _check(self.family, address, "connect")
    return _connect(self, address)


def connect_ex(self, address):
    _check(self.family, address, "connect_ex")
    return _connect_ex(self, address)


def sendto(self, data, *args):
    _check(self.family, args[-1], "sendto")
    return _sendto(self, data, *args)


def create_connection(address, *args, **kwargs):
    _check(_socket.AF_INET, address, "create_connection")
    return _create_connection(address, *args, **kwargs)


_socket.socket.connect = connect
_socket.socket.connect_ex = connect_ex
_socket.socket.sendto = sendto
_socket.create_connection = create_connection
_append(_SEEN, "%d %s" % (_os.getpid(), _cmdline()))
'''


@dataclass
class Server:
    """One server process group started through `qaserve.server.process` (which spawns and
    stops it), with what the tests read of its start."""

    name: str
    process: sp.ServerProcess
    env: dict[str, str]
    # What `GET /` answered before the first 200: "refused" or an HTTP status, in order.
    pre_ready: list[str] = field(default_factory=list)
    first_probe_s: float = 0.0  # seconds from spawn to the first probe
    startup_s: float = 0.0  # seconds from spawn to the first 200
    stop_report: dict[str, Any] | None = None

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        return self.process.proc

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    @property
    def pgid(self) -> int:
        return self.process.pgid

    def log_tail(self, lines: int = 60) -> str:
        return self.process.log_tail(lines)

    def client(self, timeout: float = 180.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def group_pids(self) -> list[int]:
        return self.process.members()

    def stop(self) -> dict[str, Any]:
        """SIGTERM the group; SIGKILL what is left after STOP_GRACE_S. Idempotent."""
        if self.stop_report is None:
            report = self.process.stop(STOP_GRACE_S)
            self.stop_report = {
                "returncode": report.returncode,
                "seconds": report.seconds,
                "left_after_sigterm": [describe_pid(p) for p in report.left_after_term],
                "left_after_sigkill": [describe_pid(p) for p in report.left],
            }
        return self.stop_report


def spawn(
    name: str, workdir: Path, env: dict[str, str], cmd: list[str] | None = None, **kw: Any
) -> Server:
    """Spawn a server (`uvicorn serve:app` unless `cmd` says otherwise) in its own process
    group, logging to `workdir/NAME.log`; stopped at exit at the latest."""
    process = sp.start_server(env, workdir / f"{name}.log", cwd=REPO, cmd=cmd, **kw)
    server = Server(name, process, env)
    atexit.register(server.stop)  # even if pytest dies before fixture teardown (stop is idempotent)
    return server


def describe_pid(pid: int) -> str:
    return f"{pid} {sp.describe(pid)}"


def engine_env(model_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a server on the tiny model: fp32 (exact parity), small context."""
    env = {
        "MODEL_DIR": str(model_dir),
        "DTYPE": "float32",
        "MAX_MODEL_LEN": "2048",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "LOG_LEVEL": "INFO",
    }
    env.update(extra)
    return env


def server_env(model_dir: Path, **extra: str) -> dict[str, str]:
    """os.environ without our settings variables, plus the tiny model's engine env and extra."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in _SCRUBBED}
    env.update(engine_env(model_dir))
    env.update({"ENGINE": "vllm", "ENFORCE_EAGER": "1"})  # eager: engine init 0.5 s, not ~55 s
    env.update(extra)
    return env


def start_server(name: str, workdir: Path, env: dict[str, str]) -> Server:
    """Spawn the server as users do and wait until `GET /` answers 200."""
    require("engine", f"starts the real server {name}")
    server = spawn(name, workdir, env)
    try:
        _wait_ready(server, server.process.started)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: Server, spawned: float) -> None:
    with httpx.Client(base_url=server.url, timeout=5.0) as client:
        while True:
            now = time.monotonic()
            if not server.first_probe_s:
                server.first_probe_s = now - spawned
            try:
                response = client.get("/")
            except httpx.ConnectError:
                server.pre_ready.append("refused")
            except httpx.TimeoutException:
                server.pre_ready.append("timeout")
            else:
                if response.status_code == 200:
                    server.startup_s = time.monotonic() - spawned
                    return
                server.pre_ready.append(str(response.status_code))
            if server.proc.poll() is not None:
                pytest.fail(
                    f"server {server.name} exited with {server.proc.returncode} before ready:\n"
                    + server.log_tail(),
                    pytrace=False,
                )
            if now - spawned > READY_TIMEOUT_S:
                pytest.fail(
                    f"server {server.name} not ready after {READY_TIMEOUT_S:.0f} s:\n"
                    + server.log_tail(),
                    pytrace=False,
                )
            time.sleep(0.25)


def finish(server: Server) -> None:
    report = server.stop()
    print(f"\nstopped server {server.name}: {report}")
    if report["left_after_sigkill"]:
        pytest.fail(f"orphan processes of {server.name}: {report}", pytrace=False)


# --- the network guard ---------------------------------------------------------------------


@dataclass
class NetGuard:
    site_dir: Path
    net_log: Path  # one line per refused non-loopback attempt
    seen_log: Path  # one line per process that loaded the guard

    def env(self, base: dict[str, str]) -> dict[str, str]:
        path = [str(self.site_dir), base.get("PYTHONPATH", "")]
        return {
            **base,
            "PYTHONPATH": os.pathsep.join(p for p in path if p),
            "QA_E2E_NET_LOG": str(self.net_log),
            "QA_E2E_SITE_SEEN": str(self.seen_log),
        }

    def attempts(self) -> list[str]:
        if not self.net_log.exists():
            return []
        return [line for line in self.net_log.read_text().splitlines() if line.strip()]

    def guarded_pids(self) -> set[int]:
        if not self.seen_log.exists():
            return set()
        return {int(line.split()[0]) for line in self.seen_log.read_text().splitlines() if line}


def make_net_guard(directory: Path) -> NetGuard:
    site_dir = directory / "site"
    site_dir.mkdir(parents=True, exist_ok=True)
    (site_dir / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    return NetGuard(site_dir, directory / "net_attempts.log", directory / "guard_loaded.log")


def decode_proc_addr(text: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    ip_hex, port_hex = text.split(":")
    raw = bytes.fromhex(ip_hex)
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # host-order words
    return ipaddress.ip_address(raw), int(port_hex, 16)


def socket_inodes(pids: list[int]) -> set[str]:
    """Inode numbers of the sockets the given processes hold open (/proc/PID/fd)."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    return inodes


def open_inet_sockets(pids: list[int]) -> list[tuple[str, str, str]]:
    """(protocol, local, remote) of every TCP/UDP socket the given processes hold open,
    C-level ones included (zmq, gloo): read from /proc, not from Python."""
    inodes = socket_inodes(pids)
    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/net/{proto}").read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 9 and cols[9] in inodes:
                    found.append((proto, cols[1], cols[2]))
    return found


def is_loopback_or_unset(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(ip, "ipv4_mapped", None)
    ip = mapped if mapped is not None else ip
    return ip.is_loopback or ip.is_unspecified
