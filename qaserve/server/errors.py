"""One JSON error body for every non-2xx answer, and the request-size limit (413)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ERROR_TYPES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    422: "invalid_request",
    499: "client_closed",
    500: "internal_error",
    503: "unavailable",
}


def error_body(status: int, message: str) -> dict[str, Any]:
    """`{"error": {"message", "type", "code"}}`: the shape OpenAI clients parse too."""
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "error"), "code": status}}


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status)


def _describe(errors: list[Any]) -> str:
    parts = []
    for err in errors[:10]:
        if err.get("type") == "json_invalid":
            parts.append(
                f"body is not valid JSON ({err.get('ctx', {}).get('error', 'decode error')})"
            )
            continue
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    more = f" (+{len(errors) - 10} more)" if len(errors) > 10 else ""
    return "; ".join(parts) + more


def _http_message(exc: HTTPException) -> str:
    # FastAPI turns a body json.loads cannot decode into a bare "error parsing the body"
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        return (
            f"body is not valid UTF-8 JSON: byte 0x{cause.object[cause.start]:02x} at "
            f"position {cause.start} ({cause.reason})"
        )
    return str(exc.detail)


def install_error_handlers(app: FastAPI) -> None:
    async def on_validation(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(422, _describe(list(exc.errors())))

    async def on_http(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        response = error_response(exc.status_code, _http_message(exc))
        response.headers.update(exc.headers or {})  # e.g. Allow on 405
        return response

    async def on_crash(_: Request, exc: Exception) -> JSONResponse:
        return error_response(500, f"internal error: {type(exc).__name__}")

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)


class BodyLimit:
    """Reject bodies over `limit` bytes with 413 before they are read into memory."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._reject(scope, receive, send)
            return
        seen = 0

        async def counting() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:  # FastAPI passes HTTPExceptions from body reading through
                raise HTTPException(413, f"request body over {self.limit} bytes")
            return message

        await self.app(scope, counting, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(413, f"request body over {self.limit} bytes")
        await response(scope, receive, send)
