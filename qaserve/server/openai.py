"""OpenAI-compatible `GET /v1/models` and `POST /v1/chat/completions` (plain and SSE).

    python -c "import openai; c = openai.OpenAI(base_url='http://127.0.0.1:8000/v1', api_key='x'); \
print(c.chat.completions.create(model='x', messages=[{'role': 'user', 'content': 'CUDA?'}]))"
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

from qaserve.answering.service import Usage
from qaserve.server.errors import error_body
from qaserve.server.schemas import ChatRequest, error_responses
from qaserve.server.state import ready_service, unless_client_leaves

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1")
MODEL_NAME = "qaserve"


def _model_name(request: Request) -> str:
    state = request.app.state.qa
    return state.model_dir.name if state.model_dir else MODEL_NAME


@router.get("/models")
async def models(request: Request) -> dict[str, Any]:
    name = _model_name(request)
    card = {"id": name, "object": "model", "created": 0, "owned_by": "qaserve"}
    return {"object": "list", "data": [card]}


STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {  # stream: `data: {chunk}`..., `data: [DONE]`
    200: {"description": "a chat.completion, or SSE chunks", "content": {"text/event-stream": {}}}
}


@router.post(
    "/chat/completions",
    response_model=None,
    responses={**STREAM_RESPONSE, **error_responses(400, 413, 422, 500, 503)},
)
async def chat_completions(body: ChatRequest, request: Request) -> Any:
    service = ready_service(request.app.state.qa)
    unsupported = body.unsupported()
    if unsupported:
        raise HTTPException(400, f"not supported by this server: {', '.join(unsupported)}")
    messages = [m.plain() for m in body.messages]
    reply = Reply(f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), _model_name(request))
    if body.stream:
        usage = Usage()
        pieces = service.chat_stream(messages, body.overrides(), usage)
        shown = usage if body.usage_in_stream() else None
        return StreamingResponse(_sse(pieces, reply, shown), media_type="text/event-stream")
    work = service.chat(messages, body.overrides())
    result, usage = await unless_client_leaves(request, work, 1)
    message = {"role": "assistant", "content": result.text}
    choice = {"index": 0, "message": message, "finish_reason": finish_reason(result.finish)}
    return {**reply.head("chat.completion"), "choices": [choice], "usage": usage_body(usage)}


@dataclass(frozen=True)
class Reply:
    """What every chunk of one answer repeats."""

    id: str
    created: int
    model: str

    def head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}


def usage_body(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def finish_reason(finish: str | None) -> str:
    """OpenAI's finish reasons: a cut answer is "length", everything else "stop"."""
    return "length" if finish in ("length", "deadline") else "stop"


async def _sse(
    pieces: AsyncIterator[tuple[str, str | None]], reply: Reply, usage: Usage | None
) -> AsyncIterator[str]:
    """SSE chunks; with `stream_options.include_usage`, a last chunk with the usage and no
    choices, as OpenAI sends it."""

    def event(body: dict[str, Any]) -> str:
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    def chunk(delta: dict[str, str], finish: str | None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return event({**reply.head("chat.completion.chunk"), "choices": [choice]})

    yield chunk({"role": "assistant", "content": ""}, None)
    finish: str | None = None
    try:
        async for piece, reason in pieces:
            finish = reason or finish
            if piece:
                yield chunk({"content": piece}, None)
    except Exception as exc:  # headers are sent: report in-band, as OpenAI servers do
        log.warning("stream failed: %s: %s", type(exc).__name__, exc)
        yield event(error_body(500, f"generation failed: {type(exc).__name__}"))
        return
    yield chunk({}, finish_reason(finish))
    if usage is not None:
        yield event(
            {**reply.head("chat.completion.chunk"), "choices": [], "usage": usage_body(usage)}
        )
    yield "data: [DONE]\n\n"
