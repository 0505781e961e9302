"""The web console's side of the server's HTTP API: status, chat stream, system prompt, metrics.

python -c "from qaserve.webui.api import probe; print(probe('http://127.0.0.1:8000'))"

Everything here is plain functions over httpx (no Gradio), so the console's logic is tested
without a browser. The console talks to the server over HTTP only, like any other client.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from qaserve.client import error_message
from qaserve.settings import Settings

PROBE_TIMEOUT_S = 5.0
ADMIN_HINT = (
    "The server refused the change (403): only clients on the server's machine, or holders of "
    "the server's ADMIN_TOKEN, may change the system prompt. Enter the token below and save again."
)
# the generation controls of the chat tab: setting name -> (chat request field, type)
GENERATION_FIELDS = {
    "max_new_tokens": ("max_tokens", int),
    "temperature": ("temperature", float),
    "top_p": ("top_p", float),
    "top_k": ("top_k", int),
    "repetition_penalty": ("repetition_penalty", float),
    "frequency_penalty": ("frequency_penalty", float),
}


class ConsoleError(Exception):
    """A failed call, with a message meant for the console's user."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ServerStatus:
    """What `GET /` and `GET /info` say: "down", "not ready" or "ready" ("checking" at first)."""

    url: str
    state: str
    detail: str = ""
    health: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def model(self) -> str:
        path = str(self.info.get("model_dir") or "")
        return path.rstrip("/").rsplit("/", 1)[-1] if path else "?"

    @property
    def engine(self) -> str:
        engine = self.info.get("engine") or {}
        return f"{engine.get('name', '?')} {engine.get('version', '')}".strip() if engine else "?"


def _url(base: str, path: str) -> str:
    return base.rstrip("/") + path


def _call(method: str, url: str, timeout_s: float = PROBE_TIMEOUT_S, **kwargs: Any) -> Any:
    """One request; its JSON (or text) on 2xx, else a ConsoleError with the server's message."""
    try:
        response = httpx.request(method, url, timeout=timeout_s, **kwargs)
    except httpx.TimeoutException as exc:
        raise ConsoleError(f"no answer from {url} within {timeout_s:g} s") from exc
    except httpx.TransportError as exc:
        raise ConsoleError(f"cannot reach {url} ({type(exc).__name__}: {exc})") from exc
    if not response.is_success:
        message = error_message(response)
        raise ConsoleError(f"HTTP {response.status_code}: {message}", response.status_code)
    if "json" in response.headers.get("content-type", ""):
        return response.json()
    return response.text


def probe(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> ServerStatus:
    """`GET /` (the grader's health check), then `GET /info` when the server answers at all."""
    try:
        response = httpx.get(_url(url, "/"), timeout=timeout_s)
    except httpx.HTTPError as exc:
        return ServerStatus(url, "down", f"{type(exc).__name__}: {exc}")
    info: dict[str, Any] = {}
    try:
        got = _call("GET", _url(url, "/info"), timeout_s)
        info = got if isinstance(got, dict) else {}
    except ConsoleError:
        pass  # an older server, or one that fails /info: the health answer still stands
    if response.status_code == 200:
        body = response.json() if "json" in response.headers.get("content-type", "") else {}
        return ServerStatus(url, "ready", "", body if isinstance(body, dict) else {}, info)
    detail = f"GET / answered {response.status_code}: {error_message(response)}"
    return ServerStatus(url, "not ready", detail, {}, info)


def banner_text(status: ServerStatus) -> str:
    """One line of plain text: the state, then what is known about the server."""
    if status.state == "checking":
        return f"Checking the server at {status.url}…"
    if status.state == "down":
        return f"Server down: cannot reach {status.url} ({status.detail})"
    if status.state == "not ready":
        return f"Server not ready at {status.url}: {status.detail}"
    mode = "batch mode" if status.health.get("status") == "batch" else "single-question mode"
    return f"Server ready at {status.url}: model {status.model}, engine {status.engine}, {mode}"


def banner_html(status: ServerStatus) -> str:
    css = {"down": "qa-down", "not ready": "qa-loading", "ready": "qa-ready"}.get(
        status.state, "qa-loading"
    )
    return f'<div class="qa-banner {css}" data-state="{status.state}">' + (
        html.escape(banner_text(status)) + "</div>"
    )


# --- settings ------------------------------------------------------------------------------


def effective_settings(info: dict[str, Any]) -> dict[str, Any]:
    """The server's settings: our `Settings` defaults overlaid with /info's non-defaults."""
    defaults = Settings.model_construct().shown()
    return {**defaults, **(info.get("settings") or {})}


def generation_defaults(info: dict[str, Any]) -> dict[str, Any]:
    """The chat controls' starting values: what the server answers with when not told."""
    settings = effective_settings(info)
    return {name: kind(settings[name]) for name, (_, kind) in GENERATION_FIELDS.items()}


def settings_rows(info: dict[str, Any]) -> list[list[str]]:
    """[name, value, "set" | ""] per setting, the non-default ones first."""
    changed = info.get("settings") or {}
    rows = [
        [name, json.dumps(value, ensure_ascii=False), "set" if name in changed else ""]
        for name, value in effective_settings(info).items()
    ]
    return sorted(rows, key=lambda row: row[2] != "set")


# --- chat ----------------------------------------------------------------------------------


def _text(content: Any) -> str:
    """A chatbot message's content as text (a string, or a list of text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or content.get("value") or "")
    if isinstance(content, Iterable):
        return "".join(_text(part) for part in content)
    return "" if content is None else str(content)


def chat_messages(history: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The chatbot's history as OpenAI messages (user/assistant turns, text only)."""
    return [
        {"role": m["role"], "content": _text(m.get("content"))}
        for m in history
        if m.get("role") in ("user", "assistant", "system")
    ]


def chat_body(messages: list[dict[str, str]], controls: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": messages, "stream": True}
    for name, (key, kind) in GENERATION_FIELDS.items():
        if controls.get(name) is not None:
            body[key] = kind(controls[name])
    return body


class StreamError(ConsoleError):
    """The server reported a failure inside the stream (after the 200 was sent)."""


def parse_sse(lines: Iterable[str]) -> Iterator[tuple[str, str | None]]:
    """(text, finish reason) per `data:` event of an OpenAI chat stream, until `[DONE]`."""
    for raw in lines:
        line = raw.strip()
        if not line.startswith("data:"):
            continue  # blank separators, comments, `event:` lines
        data = line[5:].strip()
        if data == "[DONE]":
            return
        event = json.loads(data)
        if "error" in event:
            error = event["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise StreamError(f"the server stopped the answer: {message}")
        for choice in event.get("choices", []):
            delta = choice.get("delta") or {}
            yield str(delta.get("content") or ""), choice.get("finish_reason")


def stream_chat(
    url: str, body: dict[str, Any], timeout_s: float = 600.0
) -> Iterator[tuple[str, str | None]]:
    """POST /v1/chat/completions with `stream: true`; yields (text piece, finish reason).

    Closing the generator closes the connection, which stops generation on the server."""
    timeout = httpx.Timeout(timeout_s, connect=PROBE_TIMEOUT_S)
    try:
        with (
            httpx.Client(timeout=timeout) as client,
            client.stream("POST", _url(url, "/v1/chat/completions"), json=body) as response,
        ):
            if not response.is_success:
                response.read()
                message = error_message(response)
                raise ConsoleError(f"HTTP {response.status_code}: {message}", response.status_code)
            yield from parse_sse(response.iter_lines())
    except httpx.TimeoutException as exc:
        raise ConsoleError(f"no answer within {timeout_s:g} s") from exc
    except httpx.TransportError as exc:
        raise ConsoleError(f"cannot reach {url} ({type(exc).__name__}: {exc})") from exc


@dataclass
class StreamStats:
    """Timing of one streamed answer, shown under the chat."""

    started: float = field(default_factory=time.perf_counter)
    first_piece_s: float | None = None
    chars: int = 0
    pieces: int = 0
    finish: str | None = None

    def add(self, piece: str) -> None:
        if piece and self.first_piece_s is None:
            self.first_piece_s = time.perf_counter() - self.started
        self.chars += len(piece)
        self.pieces += bool(piece)

    def line(self, state: str = "") -> str:
        seconds = time.perf_counter() - self.started
        rate = self.chars / seconds if seconds > 0 else 0.0
        first = f"{self.first_piece_s:.2f} s" if self.first_piece_s is not None else "–"
        end = state or (f"finish: {self.finish}" if self.finish else "streaming")
        return (
            f"{self.chars} chars in {seconds:.1f} s ({rate:.1f} chars/s), "
            f"first text after {first}, {self.pieces} pieces; {end}"
        )


# --- system prompt -------------------------------------------------------------------------


def get_system_prompt(url: str) -> dict[str, Any]:
    got = _call("GET", _url(url, "/system_prompt"))
    return got if isinstance(got, dict) else {}


def set_system_prompt(
    url: str, text: str | None = None, reset: bool = False, token: str | None = None
) -> dict[str, Any]:
    """Update (or reset) the server's system prompt; a 403 becomes ADMIN_HINT."""
    body: dict[str, Any] = {"reset": True} if reset else {"system_prompt": text or ""}
    token = (token or "").strip()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        got = _call("POST", _url(url, "/system_prompt"), json=body, headers=headers)
    except ConsoleError as exc:
        if exc.status in (401, 403):
            raise ConsoleError(ADMIN_HINT, exc.status) from exc
        raise
    return got if isinstance(got, dict) else {}


def get_info(url: str) -> dict[str, Any]:
    got = _call("GET", _url(url, "/info"))
    return got if isinstance(got, dict) else {}


def get_metrics_text(url: str) -> str:
    return str(_call("GET", _url(url, "/metrics")))
