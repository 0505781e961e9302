"""HTTP client for the grading contract: health (`GET /`) and `POST /predict`, typed errors.

python -c "from qaserve.client import wait_ready; print(wait_ready('http://127.0.0.1:8000', 60))"

Wall times are measured around the HTTP call (request, server work, response body), as the
grader times it. A response with the wrong number of answers is an error, never padded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0


class ClientError(Exception):
    """Any failure to get a valid answer; `elapsed_s` is the time the failed call took."""

    def __init__(self, message: str, elapsed_s: float | None = None) -> None:
        super().__init__(message)
        self.elapsed_s = elapsed_s


class ServerUnreachable(ClientError):
    """No HTTP answer at all (connection refused, reset, DNS)."""


class RequestTimeout(ClientError):
    """The server did not answer within the timeout."""


class ServerError(ClientError):
    """A non-2xx answer; `message` is the server's JSON error message when it sent one."""

    def __init__(self, status: int, message: str, elapsed_s: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}", elapsed_s)
        self.status = status
        self.message = message


class BadResponse(ClientError):
    """A 200 whose body breaks the contract (not JSON, wrong type, wrong answer count)."""


class ServerNotReady(ClientError):
    """`GET /` did not answer 200 within the wait; the message holds the last error."""


def make_client(timeout_s: float, connections: int = 8) -> httpx.Client:
    """A client with a pool large enough for `connections` concurrent requests."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, CONNECT_TIMEOUT_S))
    return httpx.Client(timeout=timeout, limits=limits)


@contextmanager
def _client_or_new(client: httpx.Client | None, timeout_s: float) -> Iterator[httpx.Client]:
    if client is not None:
        yield client
        return
    with make_client(timeout_s, connections=1) as own:
        yield own


def error_message(response: httpx.Response) -> str:
    """The server's message from `{"error": {"message"}}`, FastAPI's `detail`, or the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
        if isinstance(error, str):
            return error
        if "detail" in body:
            return str(body["detail"])
    return str(body)[:300]


def _send(
    client: httpx.Client, method: str, url: str, timeout_s: float, **kwargs: Any
) -> tuple[Any, float]:
    """One request; the JSON body of a 2xx and the call's wall time, else a ClientError."""
    start = time.perf_counter()
    try:
        response = client.request(method, url, timeout=timeout_s, **kwargs)
    except httpx.TimeoutException as exc:
        elapsed = time.perf_counter() - start
        raise RequestTimeout(f"no answer within {timeout_s:g} s ({exc!r})", elapsed) from exc
    except httpx.TransportError as exc:
        elapsed = time.perf_counter() - start
        raise ServerUnreachable(f"{type(exc).__name__}: {exc}", elapsed) from exc
    elapsed = time.perf_counter() - start
    if not response.is_success:
        raise ServerError(response.status_code, error_message(response), elapsed)
    try:
        return response.json(), elapsed
    except ValueError as exc:
        raise BadResponse(f"response is not JSON: {response.text[:200]!r}", elapsed) from exc


def health(url: str, timeout_s: float = 5.0, client: httpx.Client | None = None) -> dict[str, Any]:
    """`GET /` once: its JSON on 200, else a ClientError."""
    with _client_or_new(client, timeout_s) as c:
        body, _ = _send(c, "GET", url.rstrip("/") + "/", timeout_s)
    return body if isinstance(body, dict) else {"body": body}


def server_info(url: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """The server's `GET /info`, or {} when it has none (another server, an old version)."""
    try:
        response = httpx.get(url.rstrip("/") + "/info", timeout=timeout_s)
        body = response.json() if response.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def wait_ready(
    url: str,
    timeout_s: float,
    interval_s: float = 0.5,
    client: httpx.Client | None = None,
) -> dict[str, Any]:
    """Poll `GET /` until it answers 200 (one try at least); else raise ServerNotReady."""
    deadline = time.monotonic() + timeout_s
    tries = 0
    with _client_or_new(client, 5.0) as c:
        while True:
            tries += 1
            try:
                return health(url, timeout_s=5.0, client=c)
            except ClientError as exc:
                last = exc
            if time.monotonic() + interval_s > deadline:
                raise ServerNotReady(
                    f"{url} not ready after {timeout_s:g} s ({tries} tries); last error: {last}"
                )
            time.sleep(interval_s)


def predict_batch(
    url: str, questions: list[str], timeout_s: float, client: httpx.Client | None = None
) -> tuple[list[str], float]:
    """One `POST /predict` with every question; the answers in order and the call's wall time."""
    with _client_or_new(client, timeout_s) as c:
        body, elapsed = _send(c, "POST", _predict_url(url), timeout_s, json={"prompt": questions})
    answers = body.get("response") if isinstance(body, dict) else None
    if not isinstance(answers, list):
        raise BadResponse(f"batch answer is not a list: {str(body)[:200]!r}", elapsed)
    if len(answers) != len(questions):
        raise BadResponse(f"sent {len(questions)} questions, got {len(answers)} answers", elapsed)
    if not all(isinstance(a, str) for a in answers):
        raise BadResponse("batch answer holds items that are not strings", elapsed)
    log.info("batch of %d answered in %.2f s", len(questions), elapsed)
    return answers, elapsed


def predict_one(
    url: str, question: str, timeout_s: float, client: httpx.Client | None = None
) -> tuple[str, float]:
    """One `POST /predict` with one question; the answer and the call's wall time."""
    with _client_or_new(client, timeout_s) as c:
        body, elapsed = _send(c, "POST", _predict_url(url), timeout_s, json={"prompt": question})
    answer = body.get("response") if isinstance(body, dict) else None
    if not isinstance(answer, str):
        raise BadResponse(f"answer is not a string: {str(body)[:200]!r}", elapsed)
    return answer, elapsed


def predict_each(
    url: str,
    questions: list[str],
    timeout_s: float,
    workers: int = 1,
    on_done: Callable[[], None] | None = None,
) -> list[tuple[str | None, float | None, ClientError | None]]:
    """One POST per question by `workers` threads over one pool: (answer, seconds, error) each,
    in the questions' order. After the server proves unreachable, the rest are skipped."""
    results: list[tuple[str | None, float | None, ClientError | None]] = []
    results += [(None, None, None)] * len(questions)
    unreachable = threading.Event()

    def ask(i: int) -> None:
        if unreachable.is_set():
            results[i] = (None, None, ServerUnreachable("skipped: the server was unreachable"))
        else:
            try:
                results[i] = (*predict_one(url, questions[i], timeout_s, session), None)
            except ClientError as exc:
                results[i] = (None, exc.elapsed_s, exc)
                if isinstance(exc, ServerUnreachable):
                    unreachable.set()
        if on_done is not None:
            on_done()

    with make_client(timeout_s, workers) as session, ThreadPoolExecutor(workers) as pool:
        list(pool.map(ask, range(len(questions))))
    return results


def _predict_url(url: str) -> str:
    return url.rstrip("/") + "/predict"
