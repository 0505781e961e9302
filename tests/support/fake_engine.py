"""A fake Engine, the real app on it in-process, and helpers to check the API's answers.

`FakeEngine` implements the Engine protocol: it answers `"answer to <question>"` (the user's
turn, decoded from the prompt ids), records what it was given, fails items containing "BOOM",
and can be made slow (it then honours the deadline the way real engines do) or unhealthy.

    app = fake_app(model_dir, FakeEngine(), admin_token="t")   # then TestClient(app)
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from qaserve.engines.base import EngineInfo, GenParams, GenResult
from qaserve.server.app import create_app
from qaserve.settings import Settings, load_settings

_USER_TURN = re.compile(r"<\|im_start\|>user\n(.*?)<\|im_end\|>", re.DOTALL)
FAIL_MARKER = "BOOM"
ADMIN_TOKEN = "reliability-admin-token"  # of the large app (`big_app`) and the fuzzed one
SHARED_SETTINGS: dict[str, Any] = {
    "admin_token": "s3cret-admin-token",
    "short_max_new_tokens": 11,
    "long_max_new_tokens": 22,
    "code_max_new_tokens": 33,
    "max_new_tokens": 64,
    "max_batch_items": 400,
    "max_body_bytes": 64 * 1024,
}


@dataclass
class Call:
    """One `generate` call as the engine saw it."""

    prompts: list[str]
    params: list[GenParams]
    deadline: float | None
    at: float = field(default_factory=time.monotonic)

    @property
    def questions(self) -> list[str]:
        return [_user_turn(text) for text in self.prompts]


def _user_turn(prompt: str) -> str:
    turns = _USER_TURN.findall(prompt)
    return str(turns[-1]) if turns else ""


class FakeEngine:
    """A deterministic Engine: no model, answers derived from the question."""

    def __init__(self) -> None:
        self.info = EngineInfo(name="fake", version="0", model="fake", details={"fake": True})
        self.tokenizer: Any = None
        self.calls: list[Call] = []
        self.streamed: list[tuple[str, GenParams]] = []
        self.delay_s = 0.0
        self.healthy = True
        self.crash: Exception | None = None  # raised by generate, against the protocol
        self.stream_finish = "stop"  # the finish reason `stream` ends with
        self.stream_delay_s = 0.0  # pause before each streamed piece
        self.streams_open = 0  # `stream` generators not yet closed
        self.closed = False
        self.active = 0  # generate calls in flight now, and the most seen at once
        self.max_active = 0

    def attach(self, tokenizer: Any) -> FakeEngine:
        """The engine factory's hook: keep the tokenizer to read prompts back."""
        self.tokenizer = tokenizer
        return self

    def reset(self) -> None:
        self.calls.clear()
        self.streamed.clear()
        self.delay_s = 0.0
        self.healthy = True
        self.crash = None
        self.stream_finish = "stop"
        self.stream_delay_s = 0.0
        self.max_active = 0

    def question(self, ids: list[int]) -> str:
        """The last user turn of a rendered prompt."""
        return _user_turn(self.tokenizer.decode(ids))

    def answer(self, question: str) -> str:
        return f"answer to {question}"

    @property
    def last(self) -> Call:
        assert self.calls, "the engine was never called"
        return self.calls[-1]

    async def generate(
        self, prompts: list[list[int]], params: list[GenParams], deadline: float | None
    ) -> list[GenResult]:
        assert len(prompts) == len(params)
        texts = [self.tokenizer.decode(ids) for ids in prompts]
        self.calls.append(Call(texts, list(params), deadline))
        if self.crash is not None:
            raise self.crash
        late = False
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.delay_s:
                wait = self.delay_s if deadline is None else deadline - time.monotonic()
                late = deadline is not None and self.delay_s > wait
                await asyncio.sleep(max(0.0, min(self.delay_s, wait)))
        finally:
            self.active -= 1
        return [self._one(ids, p, late) for ids, p in zip(prompts, params, strict=True)]

    def _one(self, ids: list[int], params: GenParams, late: bool) -> GenResult:
        question = self.question(ids)
        if FAIL_MARKER in question:
            return GenResult(finish="error", error="RuntimeError: told to fail")
        text = self.answer(question)
        if late:  # what a real engine does: hand back the partial text, marked as cut
            return GenResult(text=text[: len(text) // 2], token_count=1, finish="deadline")
        return GenResult(text=text, token_count=min(len(text), params.max_new_tokens))

    async def stream(
        self, prompt: list[int], params: GenParams, deadline: float | None
    ) -> AsyncGenerator[tuple[str, str | None, int], None]:
        """`(text increment, None, 1)`; the last carries `stream_finish`."""
        question = self.question(prompt)
        self.streamed.append((question, params))
        pieces = ["answer ", "to ", question]
        self.streams_open += 1
        try:
            for n, piece in enumerate(pieces, 1):
                await asyncio.sleep(self.stream_delay_s)
                yield piece, (self.stream_finish if n == len(pieces) else None), 1
        finally:  # a real engine aborts the request here
            self.streams_open -= 1

    async def check_health(self) -> bool:
        return self.healthy

    async def close(self) -> None:
        self.closed = True


def clear_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop every variable Settings reads (matched case-insensitively, as Settings does), so
    the developer's shell (MAX_NEW_TOKENS=..., PORT=...) does not change what tests see."""
    for name in list(os.environ):
        if name.lower() in Settings.model_fields:
            monkeypatch.delenv(name)


# the `make_client` fixture: `make_client(client=(host, port), **settings)` -> (client, fake)
ClientFactory = Callable[..., tuple[TestClient, FakeEngine]]


def fake_app(model_dir: Path, fake: FakeEngine, **overrides: Any) -> FastAPI:
    """The real app on `fake`, with our settings only (the shell's variables are ignored)."""
    with pytest.MonkeyPatch.context() as mp:
        clear_settings_env(mp)
        settings = load_settings(**{"model_dir": model_dir, "warmup": False, **overrides})
    return create_app(
        settings, engine_factory=lambda s, d, tok: fake.attach(tok), exit_on_engine_death=False
    )


def assert_error_shape(status: int, body: Any) -> None:
    """The one error body: `{"error": {"message": str, "type": str, "code": int}}`."""
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"message", "type", "code"}, body
    assert isinstance(error["message"], str) and error["message"], body
    assert isinstance(error["type"], str) and error["type"], body
    assert error["code"] == status and type(error["code"]) is int, body


def assert_error(response: Any, status: int) -> dict[str, Any]:
    """The one error shape: `{"error": {"message", "type", "code"}}`; returns the inner dict."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "code"}, body
    assert error["code"] == status
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    return dict(error)


def metric(client: Any, name: str) -> float:
    """The value of one sample in `/metrics`, named as printed there (labels included), or 0."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0
