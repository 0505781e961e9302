"""PREDICT_DEADLINE_S: a slow batch is cut on time, every item still answered; clean shutdown.

    pytest tests/server/test_deadline.py -q

Its own server: a 3 s deadline and budgets (1500 new tokens per item) that a 2-core CPU cannot
finish for 64 prompts in many minutes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.checks import metric, predict, question_set, read_metrics
from tests.support.harness import STOP_GRACE_S, Server, finish, server_env, start_server

pytestmark = pytest.mark.engine

DEADLINE_S = 3.0
BUDGET = "1500"


@pytest.fixture(scope="module")
def slow_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = server_env(
        tiny_model_dir,
        PREDICT_DEADLINE_S=str(DEADLINE_S),
        MAX_MODEL_LEN="2048",
        MAX_NEW_TOKENS=BUDGET,
        SHORT_MAX_NEW_TOKENS=BUDGET,
        LONG_MAX_NEW_TOKENS=BUDGET,
        CODE_MAX_NEW_TOKENS=BUDGET,
    )
    srv = start_server("deadline", tmp_path_factory.mktemp("server-deadline"), env)
    yield srv
    finish(srv)


def test_batch_is_cut_at_the_deadline_not_lost(slow_server: Server):
    questions = question_set(64, prefix="限时")
    with slow_server.client(timeout=120) as client:
        before = read_metrics(client)
        start = time.monotonic()
        answers = predict(client, questions)  # server budgets: 1500 tokens each
        elapsed = time.monotonic() - start
        after = read_metrics(client)
        assert client.get("/").status_code == 200  # the engine survived the aborts
        assert predict(client, "什么是CUDA？", max_new_tokens=8).strip()

    assert elapsed < 15.0, f"a {DEADLINE_S} s deadline took {elapsed:.1f} s"
    assert elapsed >= DEADLINE_S * 0.9, f"{elapsed:.1f} s: was anything generated at all?"
    assert len(answers) == len(questions)
    cut = metric(after, "qa_deadline_cut_items_total") - metric(
        before, "qa_deadline_cut_items_total"
    )
    assert cut > 0, "nothing was counted as cut by the deadline"
    assert metric(after, "qa_items_total") - metric(before, "qa_items_total") == len(questions)
    # "unfinished answers are cut, never lost": what was generated before the cut is returned
    nonempty = sum(1 for a in answers if a.strip())
    assert nonempty >= len(questions) // 2, f"only {nonempty}/{len(questions)} partial answers"
    print(f"\ndeadline batch: {elapsed:.1f} s, {int(cut)} cut, {nonempty} non-empty")


def test_sigterm_stops_every_process_gracefully(slow_server: Server):
    """Last in this module: SIGTERM ends the server and vLLM's children without SIGKILL."""
    assert len(slow_server.group_pids()) >= 2  # uvicorn + EngineCore (+ worker)
    report = slow_server.stop()
    assert report["left_after_sigkill"] == [], report
    assert report["left_after_sigterm"] == [], f"needed SIGKILL after {STOP_GRACE_S} s: {report}"
    # uvicorn re-raises the SIGTERM it handled once shut down: -15 is its normal exit
    assert report["returncode"] in (0, -15), report
    log = slow_server.log_path.read_text(encoding="utf-8", errors="replace")
    assert "Application shutdown complete" in log, slow_server.log_tail()
    with pytest.raises(httpx.ConnectError):
        httpx.get(slow_server.url, timeout=5)
