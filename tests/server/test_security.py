"""Security: who may change the server, where it listens, and that secrets never leak.

    pytest tests/server/test_security.py -q

- every mutating route refuses non-local clients unless they hold ADMIN_TOKEN: in-process
  (every POST/PUT/PATCH/DELETE route of the app, found from its route table), and over real
  TCP from this machine's non-loopback address, where X-Forwarded-For cannot fake loopback;
- `python serve.py` with HOST=127.0.0.1 listens on loopback only (not on the other address);
- the secret markers `rel_server` runs with (ADMIN_TOKEN, MODELSCOPE_API_TOKEN, ...) appear
  in no endpoint, no process command line and nowhere in its DEBUG log (the log is checked
  again, whole, after the server stopped: tests/server/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from tests.support.fake_engine import FakeEngine, assert_error_shape, fake_app
from tests.support.harness import Server
from tests.support.servers import (
    SECRETS,
    UvicornThread,
    listening_addresses,
    local_ipv4_addresses,
)

TOKEN = "sec-admin-token-e81c"
INFERENCE = {"/predict", "/v1/chat/completions"}  # answer questions, change nothing
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
VALID_BODY = {"/system_prompt": {"system_prompt": "你是助教。"}}
REMOTE = ("203.0.113.9", 40000)


def _mutating_routes(app: object) -> list[tuple[str, str]]:
    routes = [r for r in app.routes if isinstance(r, APIRoute)]  # type: ignore[attr-defined]
    return sorted(
        (method, r.path)
        for r in routes
        for method in r.methods & MUTATING
        if r.path not in INFERENCE
    )


@pytest.mark.parametrize("configured", [TOKEN, None], ids=["token-set", "no-token"])
def test_every_mutating_route_needs_loopback_or_the_token(
    tiny_model_dir: Path, configured: str | None
) -> None:
    app = fake_app(tiny_model_dir, FakeEngine(), admin_token=configured)
    routes = _mutating_routes(app)
    assert routes == [("POST", "/system_prompt")], routes  # a new one must be added here
    local = TestClient(app, client=("::1", 1))  # no lifespan of its own: `remote` starts it
    with TestClient(app, client=REMOTE) as remote:
        for method, path in routes:
            body = VALID_BODY[path]
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                response = remote.request(method, path, json=body, headers=headers)
                assert response.status_code == 403, (path, headers, response.text)
                assert_error_shape(403, response.json())
            with_token = remote.request(
                method, path, json=body, headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert with_token.status_code == (200 if configured else 403), with_token.text
            assert local.request(method, path, json=body).status_code == 200


def _other_address() -> str:
    addresses = local_ipv4_addresses()
    if not addresses:
        pytest.skip("this machine has no non-loopback IPv4 address to test from")
    return addresses[0]


def test_a_real_non_loopback_peer_is_refused_without_the_token(tiny_model_dir: Path) -> None:
    address = _other_address()
    app = fake_app(tiny_model_dir, FakeEngine(), admin_token=TOKEN)
    body = VALID_BODY["/system_prompt"]
    with UvicornThread(app, host=address) as url, httpx.Client(base_url=url, timeout=30) as c:
        assert c.get("/system_prompt").status_code == 200  # reading is allowed
        assert c.post("/system_prompt", json=body).status_code == 403
        spoofed = {"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1"}
        assert c.post("/system_prompt", json=body, headers=spoofed).status_code == 403
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert c.post("/system_prompt", json=body, headers=auth).status_code == 200
        assert c.post("/predict", json={"prompt": ["q"]}).json() == {"response": ["answer to q"]}


def test_a_server_told_one_address_listens_on_it_only(tiny_model_dir: Path) -> None:
    address = _other_address()
    with UvicornThread(fake_app(tiny_model_dir, FakeEngine()), host=address) as url:
        assert httpx.get(url, timeout=10).status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(url.replace(address, "127.0.0.1"), timeout=10)


@pytest.mark.engine
def test_serve_py_with_host_loopback_is_not_reachable_elsewhere(rel_server: Server) -> None:
    assert rel_server.env["HOST"] == "127.0.0.1"
    port = rel_server.env["PORT"]
    assert httpx.get(rel_server.url, timeout=10).status_code == 200
    for address in local_ipv4_addresses():
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://{address}:{port}/", timeout=10)
    listening = listening_addresses(rel_server.group_pids())
    assert f"127.0.0.1:{port}" in listening, listening
    assert all(a.startswith(("127.", "::1")) for a in listening), listening  # vLLM's too


@pytest.mark.engine
def test_secrets_appear_in_no_endpoint_command_line_or_log(rel_server: Server) -> None:
    admin = SECRETS["ADMIN_TOKEN"]
    with rel_server.client() as client:
        auth = {"Authorization": f"Bearer {admin}"}
        changed = client.post("/system_prompt", json={"system_prompt": "临时"}, headers=auth)
        assert changed.status_code == 200
        client.post("/system_prompt", json={"reset": True}, headers={"Authorization": "Bearer x"})
        assert client.post("/system_prompt", json={"reset": True}).status_code == 200  # local
        client.post("/predict", json={"prompt": ["什么是CUDA？"], "max_new_tokens": 4})
        paths = ["/", "/info", "/metrics", "/system_prompt", "/openapi.json", "/v1/models", "/x"]
        pages = {path: client.get(path).text for path in paths}
        info = client.get("/info").json()
    assert info["settings"]["admin_token"] == "***"
    assert info["settings"]["modelscope_api_token"] == "***"
    cmdlines = {}
    for pid in rel_server.group_pids():
        try:
            cmdlines[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
    log = rel_server.log_path.read_text(encoding="utf-8", errors="replace")
    assert "DEBUG" in log  # the most verbose level the server has
    for name, marker in SECRETS.items():
        for path, text in pages.items():
            assert marker not in text, f"{name} in {path}"
        assert not any(marker in c for c in cmdlines.values()), f"{name} in a command line"
        assert marker not in log, f"{name} in the server log"
