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
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from qaserve.errors import error_body
from qaserve.schemas import ChatRequest, error_responses

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
    from qaserve.server import ready_service, unless_client_leaves

    service = ready_service(request.app.state.qa)
    messages = [m.model_dump() for m in body.messages]
    created, cid, name = int(time.time()), f"chatcmpl-{uuid.uuid4().hex}", _model_name(request)
    if body.stream:
        pieces = service.chat_stream(messages, body.overrides())
        return StreamingResponse(_sse(pieces, cid, created, name), media_type="text/event-stream")
    work = service.chat(messages, body.overrides())
    result, prompt_tokens = await unless_client_leaves(request, work, 1)
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "finish_reason": finish_reason(result.finish),
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": result.token_count,
            "total_tokens": prompt_tokens + result.token_count,
        },
    }


def finish_reason(finish: str | None) -> str:
    """OpenAI's finish reasons: a cut answer is "length", everything else "stop"."""
    return "length" if finish in ("length", "deadline") else "stop"


async def _sse(
    pieces: AsyncIterator[tuple[str, str | None]], cid: str, created: int, name: str
) -> AsyncIterator[str]:
    def chunk(delta: dict[str, str], finish: str | None) -> str:
        body = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": name,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""}, None)
    finish: str | None = None
    try:
        async for piece, reason in pieces:
            finish = reason or finish
            if piece:
                yield chunk({"content": piece}, None)
    except Exception as exc:  # headers are sent: report in-band, as OpenAI servers do
        log.warning("stream failed: %s", type(exc).__name__)
        yield f"data: {json.dumps(error_body(500, f'generation failed: {type(exc).__name__}'))}\n\n"
        return
    yield chunk({}, finish_reason(finish))
    yield "data: [DONE]\n\n"
