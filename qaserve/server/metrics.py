"""Prometheus metrics of one app instance (own registry, so several apps can coexist in tests)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
KNOWN_PATHS = {
    "/",
    "/predict",
    "/info",
    "/metrics",
    "/system_prompt",
    "/v1/models",
    "/v1/chat/completions",
}  # other paths share one label: bounded cardinality
BATCH_BUCKETS = (1, 2, 8, 32, 64, 128, 256, 358, 512, 1024, 2048, 8192, 16384)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter(
            "qa_requests",
            "HTTP requests by endpoint and status",
            ["endpoint", "status"],
            registry=reg,
        )
        self.latency = Histogram(
            "qa_request_seconds",
            "Request latency",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.batch_size = Histogram(
            "qa_batch_items", "Items per /predict request", buckets=BATCH_BUCKETS, registry=reg
        )
        self.items = Counter("qa_items", "Questions answered", registry=reg)
        self.empty = Counter("qa_empty_answers", "Answers that came out empty", registry=reg)
        self.failed = Counter("qa_failed_items", "Items the engine failed on", registry=reg)
        self.malformed = Counter(
            "qa_malformed_items",
            "Batch items neither text nor number (answered empty)",
            registry=reg,
        )
        self.cut = Counter("qa_deadline_cut_items", "Items cut by the deadline", registry=reg)
        self.aborted = Counter(
            "qa_aborted_items", "Items aborted because the client went away", registry=reg
        )
        self.truncated = Counter("qa_truncated_prompts", "Prompts cut to fit", registry=reg)
        self.prompt_tokens = Counter("qa_prompt_tokens", "Prompt tokens", registry=reg)
        self.answer_tokens = Counter("qa_answer_tokens", "Answer tokens", registry=reg)
        self.prompt_chars = Counter("qa_prompt_chars", "Question characters", registry=reg)
        self.answer_chars = Counter("qa_answer_chars", "Answer characters", registry=reg)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware: count requests by endpoint and status, time them."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.monotonic()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            endpoint = scope["path"] if scope["path"] in KNOWN_PATHS else "other"
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.monotonic() - start)
