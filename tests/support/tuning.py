"""Helpers of the tuner tests: question and space files, a fake trial runner, a local webhook
receiver and a local SMTP server (aiosmtpd), all on loopback.

    pytest tests/tuning -q
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from qaserve.settings import Settings
from qaserve.tuning.notify import Message
from qaserve.tuning.trial import TrialResult, aggregate
from tests.support.harness import engine_env

TOPICS = ["warp", "shared memory", "tiling", "atomicAdd", "CUDA stream", "coalescing"]
SETTINGS_VARS = {name.upper() for name in Settings.model_fields}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_questions(path: Path, n: int = 4) -> Path:
    rows = [
        {"question": f"什么是{t}？", "answer": f"{t} 是CUDA中的概念，例如 blockDim {i}"}
        for i, t in enumerate(TOPICS[:n])
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def write_space(path: Path, params: dict[str, Any], env: dict[str, Any] | None = None) -> Path:
    path.write_text(json.dumps({"env": env or {}, "params": params}), encoding="utf-8")
    return path


def clean_env() -> dict[str, str]:
    """os.environ without server settings a developer's shell may export."""
    return {k: v for k, v in os.environ.items() if k.upper() not in SETTINGS_VARS}


def tiny_server_env(model_dir: Path) -> dict[str, Any]:
    """The fixed env of a real-engine study: tiny fp32 model, eager, no warm-up, short answers."""
    return engine_env(
        model_dir,
        ENGINE="vllm",
        ENFORCE_EAGER="1",
        WARMUP="0",
        MAX_NEW_TOKENS="16",
        MAX_MODEL_LEN="1024",
        LOG_LEVEL="INFO",
    )


# --- a trial runner without a server ---------------------------------------------------------


@dataclass
class FakeRunner:
    """Stands in for `run_trial`: `score(env)` gives (chars/s, accuracy) or a failure kind."""

    score: Callable[[dict[str, str]], tuple[float, float] | str]
    calls: list[dict[str, str]] = field(default_factory=list)

    def __call__(
        self,
        env: dict[str, str],
        qas: list[Any],
        cfg: Any,
        log_path: Path,
        records_path: Path | None = None,
        on_phase: Any = None,
    ) -> TrialResult:
        self.calls.append(env)
        with open(log_path, "a", encoding="utf-8") as f:
            f.write("fake server log\n")
        if on_phase:
            on_phase("starting", None)
        out = self.score(env)
        if isinstance(out, str):
            return TrialResult(out, str(log_path), error=f"{out}: boom\nsecond line", seconds=1.0)
        speed, accuracy = out
        run = {
            "n": len(qas),
            "mode": "batch",
            "accuracy_grader": accuracy,
            "accuracy_cjk": accuracy,
            "chars": int(speed),
            "post_seconds": 1.0,
            "chars_per_s": speed,
            "tokens": None,
            "tokens_per_s": None,
            "empty": 0,
            "posts": 1,
        }
        return TrialResult(
            "ok", str(log_path), metrics=aggregate([run]), runs=[run], startup_s=1.0, seconds=2.0
        )


@dataclass
class FakeChannel:
    name: str = "fake"
    messages: list[Message] = field(default_factory=list)

    def send(self, message: Message) -> None:
        self.messages.append(message)

    def events(self) -> list[str]:
        return [m.event for m in self.messages]


# --- a local webhook receiver ----------------------------------------------------------------


@dataclass
class Webhook:
    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    reply: dict[str, Any] = field(default_factory=lambda: {"code": 0, "msg": "success"})


@contextmanager
def serve_webhook(path: str = "/open-apis/bot/v2/hook/SECRET-HOOK-TOKEN") -> Iterator[Webhook]:
    """A Feishu-like receiver on loopback; each JSON body POSTed to `path` is kept."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    hook = Webhook(f"http://127.0.0.1:{server.server_address[1]}{path}")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == path:
                hook.bodies.append(json.loads(body))
            reply = json.dumps(hook.reply if self.path == path else {"code": 404}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server.RequestHandlerClass = Handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()


# --- a local SMTP server ---------------------------------------------------------------------


@dataclass
class Mailbox:
    port: int
    messages: list[Any] = field(default_factory=list)  # email.message.Message
    logins: list[tuple[str, str]] = field(default_factory=list)


@contextmanager
def serve_smtp(
    tls: Any = None, implicit_tls: bool = False, auth: bool = False
) -> Iterator[Mailbox]:
    """aiosmtpd on a free loopback port (its Controller does not take port 0). `tls` is a server
    SSLContext: STARTTLS offered (required), or implicit TLS with `implicit_tls`."""
    from email import message_from_bytes

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    box = Mailbox(free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            box.messages.append(message_from_bytes(envelope.original_content))
            return "250 OK"

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        login = (data.login.decode(), data.password.decode())
        box.logins.append(login)
        return AuthResult(success=login == ("tuner", "SMTP-PASSWORD-SECRET"), handled=False)

    kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": box.port}
    if tls is not None and implicit_tls:
        kwargs["ssl_context"] = tls
    elif tls is not None:
        kwargs.update(tls_context=tls, require_starttls=True)
    if auth:
        kwargs.update(
            authenticator=authenticate, auth_required=True, auth_require_tls=tls is not None
        )
    controller = Controller(Handler(), server_hostname="localhost", **kwargs)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
