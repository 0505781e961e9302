"""What the routes share: the app's state, the engine's liveness, and the guards every
answering route goes through (ready, client still there).

    python -c "from qaserve.server.state import AppState; help(AppState)"
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from fastapi import HTTPException, Request

from qaserve.answering.service import QAService
from qaserve.server.metrics import Metrics
from qaserve.settings import Settings

log = logging.getLogger(__name__)
DISCONNECT_POLL_S = 0.5  # how often a waiting request checks that its client is still there
T = TypeVar("T")


@dataclass
class AppState:
    settings: Settings
    metrics: Metrics = field(default_factory=Metrics)
    service: QAService | None = None
    model_dir: Path | None = None
    ready: bool = False
    dead: bool = False
    exit_on_death: bool = True
    started: float = field(default_factory=time.monotonic)
    startup_s: dict[str, float] = field(default_factory=dict)  # where the start-up went


async def engine_alive(state: AppState) -> bool:
    """False once the engine is dead; whoever notices first (health, a request, the watchdog)
    makes health fail from then on and ends the process so a supervisor restarts it."""
    if state.dead:
        return False
    if state.service is None or await state.service.engine.check_health():
        return True
    if state.dead:  # another caller noticed while this one was waiting
        return False
    state.dead = True
    log.error("the engine died: health now fails%s", ", exiting" if state.exit_on_death else "")
    if state.exit_on_death:
        os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's graceful shutdown
    return False


async def unless_client_leaves(request: Request, work: Awaitable[T], items: int) -> T:
    """Await `work`; if the client disconnects first, cancel it, so the engine aborts its
    items instead of generating answers nobody will read (counted in qa_aborted_items)."""
    task = asyncio.ensure_future(work)
    start = time.monotonic()
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if done:
                return task.result()
            if await request.is_disconnected():
                break
    finally:
        task.cancel()  # a no-op once done; else also when this handler itself is cancelled
    with contextlib.suppress(asyncio.CancelledError):
        await task
    request.app.state.qa.metrics.aborted.inc(items)
    log.info("client went away after %.1f s: %d items aborted", time.monotonic() - start, items)
    raise HTTPException(499, "the client closed the connection")


def ready_service(state: AppState) -> QAService:
    if state.service is None or not state.ready or state.dead:
        raise HTTPException(503, "the engine is not ready")
    return state.service
