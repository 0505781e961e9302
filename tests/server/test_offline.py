"""Nothing in the serving path reaches beyond loopback (the grader's run stage is offline).

    pytest tests/server/test_offline.py -q

The main server runs with a `sitecustomize.py` (harness.SITECUSTOMIZE) on its PYTHONPATH:
every Python-level connect/connect_ex/sendto/create_connection to a non-loopback address is
recorded and refused, in the server and in vLLM's child processes. Sockets opened by C code
(zmq, gloo) are checked separately, from /proc.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.checks import predict, question_set
from tests.support.harness import (
    NetGuard,
    Server,
    decode_proc_addr,
    is_loopback_or_unset,
    make_net_guard,
    open_inet_sockets,
)

pytestmark = pytest.mark.engine


def test_guard_detects_and_refuses_outside_connections(tmp_path: Path):
    """Control: the guard really catches an outside connection (so an empty log means none)."""
    guard = make_net_guard(tmp_path)
    code = (
        "import socket\n"
        "for target in (('203.0.113.1', 80), ('2001:db8::1', 80, 0, 0)):\n"
        "    fam = socket.AF_INET6 if ':' in target[0] else socket.AF_INET\n"
        "    s = socket.socket(fam, socket.SOCK_STREAM)\n"
        "    try:\n"
        "        s.connect(target)\n"
        "    except OSError as e:\n"
        "        print('refused', e.errno)\n"
        "try:\n"
        "    socket.create_connection(('example.com', 443), timeout=1)\n"
        "except OSError as e:\n"
        "    print('refused', e.errno)\n"
        "a, b = socket.socketpair()\n"  # AF_UNIX and loopback pass
        "srv = socket.create_server(('127.0.0.1', 0))\n"
        "socket.create_connection(srv.getsockname(), timeout=1).close()\n"
        "print('local ok')\n"
    )
    env = guard.env({**os.environ})
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n").count("refused 101") == 3, done.stdout
    assert "local ok" in done.stdout
    attempts = guard.attempts()
    assert len(attempts) == 3, attempts
    assert any("203.0.113.1" in a for a in attempts)
    assert any("example.com" in a for a in attempts)


def test_serving_path_stays_on_loopback(server: Server, client: httpx.Client, net_guard: NetGuard):
    predict(client, question_set(8, prefix="离线"), max_new_tokens=8)
    predict(client, "什么是CUDA？", max_new_tokens=8)
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as oai:
        model = oai.models.list().data[0].id
        done = oai.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "CUDA?"}], max_tokens=8
        )
        assert done.choices[0].message.content is not None
        stream = oai.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "CUDA?"}], max_tokens=8, stream=True
        )
        assert sum(1 for _ in stream) >= 2

    # The guard was active in the server and in the engine's child processes.
    group = server.group_pids()
    guarded = net_guard.guarded_pids()
    assert server.proc.pid in guarded, (server.proc.pid, guarded)
    children = [p for p in group if p != server.proc.pid]
    assert children, "vLLM started no child processes?"
    assert guarded & set(children), f"guard not loaded in children {children}: {guarded}"
    assert net_guard.attempts() == [], net_guard.attempts()

    # C-level sockets (zmq, gloo) bypass the Python guard: every socket the process group
    # holds must be bound to, and connected to, loopback (or nothing).
    outside = []
    for proto, local, remote in open_inet_sockets(group):
        (local_ip, _), (remote_ip, _) = decode_proc_addr(local), decode_proc_addr(remote)
        if not is_loopback_or_unset(remote_ip) or not is_loopback_or_unset(local_ip):
            outside.append((proto, str(local_ip), str(remote_ip)))
    assert outside == [], outside
