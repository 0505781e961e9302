"""Score a running server like the grader: accuracy (mean grader RougeL) and speed (chars/s).

python -c "from qaserve.evaluation.run import evaluate; from qaserve.questions import QA; \
print(evaluate([QA('什么是warp？', 'warp')], endpoint='http://127.0.0.1:8000')[1])"

`evaluate()` sends the questions in the grader's way (one batch when `GET /` says batch, else
one POST per question) or with N concurrent clients, and returns one record per question plus
a `RunSummary`. Failed questions keep their error and count as "" in the accuracy, as the grader
would score them; they are never hidden among wrong answers. Its command line (`eval_local.py`)
is `qaserve.evaluation.cli`; the tuner and the web console's batch test call it directly.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from qaserve import client as http
from qaserve.evaluation.scoring import score_pairs
from qaserve.evaluation.summary import RunSummary
from qaserve.questions import QA, strip_question_suffix

log = logging.getLogger(__name__)

MODES = ("auto", "batch", "sequential", "concurrent")
# (answer, seconds of the POST, error) per question
Outcome = tuple[str | None, float | None, str | None]
# a run's progress: (questions answered, questions, seconds since they went out)
Progress = Callable[[int, int, float], None]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")  # a directory a tokenizer loads from
PROGRESS_EVERY_S = 0.5  # how often progress is told while nothing is answered (one batch POST)
T = TypeVar("T")


def evaluate(
    qas: list[QA],
    *,
    endpoint: str,
    mode: str = "auto",
    concurrency: int = 8,
    timeout_s: float = 360.0,
    tokenizer_dir: Path | None = None,
    strip_q_suffix: bool = False,
    progress: Progress | None = None,
    sleep_s: float = 0.0,
) -> tuple[list[dict[str, Any]], RunSummary]:
    """Ask the server every question; return (one record per question, summary). `progress`
    is told on this thread how far the run is (see `_asking`)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    tokenizer = _load_tokenizer(tokenizer_dir) if tokenizer_dir else None  # before any timing
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    mode = resolve_mode(endpoint, mode)
    prompts = [strip_question_suffix(qa.question) if strip_q_suffix else qa.question for qa in qas]
    workers = clients(mode, concurrency)

    def ask(tick: Callable[[], None]) -> tuple[list[Outcome], list[float]]:
        if mode == "batch":
            return _run_batch(endpoint, prompts, timeout_s)
        return _run_each(endpoint, prompts, timeout_s, workers, tick, sleep_s)

    wall_start = time.perf_counter()
    outcomes, post_seconds = _asking(ask, len(qas), progress)
    wall_s = time.perf_counter() - wall_start

    answers = [answer for answer, _, _ in outcomes]
    tokens = [_count(tokenizer, a) if tokenizer and a is not None else None for a in answers]
    grader, cjk = score_pairs([qa.answer for qa in qas], answers)
    records: list[dict[str, Any]] = [
        {
            "index": i,
            "set": qa.source,
            "question": qa.question,
            "ref": qa.answer,
            "pred_raw": answer,
            "rougeL_f1_raw": grader[i],
            "rougeL_f1_cjk": cjk[i],
            "chars": len(answer or ""),
            "latency_s": seconds if mode != "batch" else None,
            "output_tokens_raw": tokens[i],
            "error": error,
        }
        for i, (qa, (answer, seconds, error)) in enumerate(zip(qas, outcomes, strict=True))
    ]
    summary = RunSummary.of_run(
        records,
        mode=mode,
        endpoint=endpoint,
        started=started,
        post_seconds=post_seconds,
        wall_s=wall_s,
        concurrency=workers,
        token_counts=[t or 0 for t in tokens] if tokenizer else None,
    )
    if summary.errors:
        log.warning("%d of %d questions failed (scored as empty answers)", summary.errors, len(qas))
    return records, summary


def clients(mode: str, concurrency: int) -> int:
    """How many questions are out at once: `concurrency` in concurrent mode, else one."""
    return max(1, concurrency) if mode == "concurrent" else 1


def has_tokenizer(path: Path) -> bool:
    """Whether answer tokens can be counted with a tokenizer loaded from `path`."""
    return any((path / name).is_file() for name in TOKENIZER_FILES)


def resolve_mode(endpoint: str, mode: str) -> str:
    """The grader's rule for `auto`: one batch when `GET /` says batch, else one by one."""
    if mode != "auto":
        return mode
    return "batch" if http.health(endpoint).get("status") == "batch" else "sequential"


def _asking(work: Callable[[Callable[[], None]], T], total: int, progress: Progress | None) -> T:
    """`work(tick)`, which calls `tick()` once per answered question from any thread; meanwhile
    `progress(answered, total, seconds)` is called on this thread at the start, at each answer
    and every PROGRESS_EVERY_S (Gradio's progress tracker works only on its own thread)."""
    if progress is None:
        return work(lambda: None)
    events: queue.SimpleQueue[bool] = queue.SimpleQueue()  # False: an answer, True: the end
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = work(lambda: events.put(False))
        except BaseException as exc:  # raised again on the caller's thread below
            result["error"] = exc
        events.put(True)

    threading.Thread(target=run, name="evaluate", daemon=True).start()
    start, answered = time.perf_counter(), 0
    progress(0, total, 0.0)
    while True:
        try:
            if events.get(timeout=PROGRESS_EVERY_S):
                break
            answered += 1
        except queue.Empty:
            pass
        progress(answered, total, time.perf_counter() - start)
    if "error" in result:
        raise result["error"]
    return result["value"]


def _run_batch(
    endpoint: str, prompts: list[str], timeout_s: float
) -> tuple[list[Outcome], list[float]]:
    try:
        answers, seconds = http.predict_batch(endpoint, prompts, timeout_s)
    except http.ClientError as exc:  # the grader would fail the whole submission here
        failed: Outcome = (None, exc.elapsed_s, _describe(exc))
        return [failed] * len(prompts), [exc.elapsed_s] if exc.elapsed_s is not None else []
    return [(a, None, None) for a in answers], [seconds]


def _run_each(
    endpoint: str,
    prompts: list[str],
    timeout_s: float,
    workers: int,
    tick: Callable[[], None],
    sleep_s: float = 0.0,
) -> tuple[list[Outcome], list[float]]:
    def done() -> None:
        tick()
        if sleep_s > 0:  # --sleep: a pause between requests, outside their timing
            time.sleep(sleep_s)

    results = http.predict_each(endpoint, prompts, timeout_s, workers, on_done=done)
    outcomes: list[Outcome] = [
        (answer, seconds, _describe(exc) if exc else None) for answer, seconds, exc in results
    ]
    return outcomes, [seconds for _, seconds, _ in outcomes if seconds is not None]


def _describe(exc: http.ClientError) -> str:
    return f"{type(exc).__name__}: {exc}"


def _load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def _count(tokenizer: Any, text: str) -> int:
    return len(tokenizer.encode(text, add_special_tokens=False))


def write_jsonl(records: list[dict[str, Any]], path: Path, overwrite: bool = False) -> None:
    """One JSON object per line; refuses an existing file unless `overwrite`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w" if overwrite else "x", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
