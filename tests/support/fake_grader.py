"""A fake grader-contract server (FastAPI + uvicorn in a thread) for the client and CLI tests.

The fake answers `answer:<question>`; the question text picks a misbehaviour: `BOOM` → 500
with the one JSON error body, `SHORT` → one answer too few, `SLOW` → answers after 3 s,
`NUM` → a number instead of a string. `GET /` answers 503 for the first `not_ready` probes.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


@dataclass
class FakeServer:
    url: str
    status: str = "batch"
    not_ready: int = 0  # 503s still to answer on `GET /`
    info: dict[str, Any] | None = None  # what `GET /info` answers (None: 404, as old servers)
    posts: list[Any] = field(default_factory=list)


def _answer(question: Any) -> Any:
    return 7 if question == "NUM" else f"answer:{question}"


def _app(state: FakeServer) -> FastAPI:
    app = FastAPI()

    @app.get("/")
    async def health() -> JSONResponse:
        if state.not_ready > 0:
            state.not_ready -= 1
            return JSONResponse({"error": {"message": "loading", "code": 503}}, status_code=503)
        return JSONResponse({"status": state.status})

    @app.get("/info")
    async def info() -> JSONResponse:
        if state.info is None:
            return JSONResponse({"error": {"message": "Not Found", "code": 404}}, status_code=404)
        return JSONResponse(state.info)

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        prompt = (await request.json())["prompt"]
        state.posts.append(prompt)
        items = prompt if isinstance(prompt, list) else [prompt]
        if "BOOM" in items:
            body = {"error": {"message": "engine exploded", "type": "internal_error", "code": 500}}
            return JSONResponse(body, status_code=500)
        if "SLOW" in items:
            await asyncio.sleep(3)
        answers = [_answer(q) for q in items]
        if "SHORT" in items:
            answers = answers[:-1]
        return JSONResponse({"response": answers if isinstance(prompt, list) else answers[0]})

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_fake() -> Iterator[FakeServer]:
    """The fake server on a free port for the block's duration."""
    import uvicorn

    port = free_port()
    state = FakeServer(f"http://127.0.0.1:{port}")
    config = uvicorn.Config(_app(state), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "fake server did not start"
        time.sleep(0.02)
    try:
        yield state
    finally:
        server.should_exit = True
        thread.join(timeout=10)
