"""The web console's batch test: the evaluator's library run in steps a progress bar can show.

python -c "from pathlib import Path; from qaserve.webui.batch import load_set, run_batch; \
print(run_batch(load_set(Path('set.jsonl')), 'http://127.0.0.1:8000')[1])"

`qaserve.evaluation.run.evaluate` does the asking and scoring. In batch mode (the grader's way)
there is one POST, so progress is its elapsed time against the timeout; in sequential and
concurrent modes the questions go in chunks, one `evaluate` call each, merged afterwards into
the same records and summary one call would give.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qaserve.questions import QA

# (fraction done or None, description)
Progress = Callable[[float | None, str], None]
STEPS = 20  # progress steps of a chunked run
TABLE_HEADERS = ["#", "question", "reference", "answer", "grader", "CJK", "chars", "s", "error"]
CELL_LIMIT = 200  # the table stays readable; the JSONL keeps every character
SUMMED = ("n", "chars", "post_seconds", "errors", "empty", "posts", "wall_s")


def load_set(path: Path, max_n: int | None = None, dedupe: bool = False) -> list[QA]:
    """An uploaded question file (docx/jsonl/json/txt/csv), named after the file's stem."""
    from qaserve.questions import load_questions, select

    qas = [dataclasses.replace(qa, source=Path(path).stem) for qa in load_questions(path)]
    return select(qas, dedupe=dedupe, max_n=max_n)


def describe_set(qas: list[QA]) -> str:
    with_ref = sum(1 for qa in qas if qa.answer.strip())
    text = f"{len(qas)} questions, {with_ref} with a reference answer"
    if with_ref < len(qas):
        text += f" (the {len(qas) - with_ref} without one score 0)"
    return text


def run_batch(
    qas: list[QA],
    endpoint: str,
    *,
    mode: str = "auto",
    concurrency: int = 8,
    timeout_s: float = 360.0,
    strip_q_suffix: bool = False,
    progress: Progress | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Ask and score every question as `evaluate` does, reporting progress as it goes."""
    from qaserve import client as http

    report = progress or (lambda _fraction, _desc: None)
    if mode == "auto":  # the grader's rule: batch when `GET /` says so
        mode = "batch" if http.health(endpoint).get("status") == "batch" else "sequential"
    options = {
        "endpoint": endpoint,
        "mode": mode,
        "concurrency": concurrency,
        "timeout_s": timeout_s,
        "strip_q_suffix": strip_q_suffix,
        "progress": False,
    }
    if mode == "batch":
        return _one_post(qas, options, report)
    return _chunked(qas, options, report)


def _one_post(
    qas: list[QA], options: dict[str, Any], report: Progress
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from qaserve.evaluation.run import evaluate

    done: dict[str, Any] = {}

    def work() -> None:
        try:
            done["result"] = evaluate(qas, **options)
        except BaseException as exc:  # handed to the caller's thread below
            done["error"] = exc

    worker = threading.Thread(target=work, name="webui-batch", daemon=True)
    start = time.monotonic()
    worker.start()
    while worker.is_alive():
        elapsed = time.monotonic() - start
        fraction = min(elapsed / options["timeout_s"], 0.99)
        report(fraction, f"one POST /predict with {len(qas)} questions: {elapsed:.0f} s")
        worker.join(0.5)
    if "error" in done:
        raise done["error"]
    return done["result"]


def _chunked(
    qas: list[QA], options: dict[str, Any], report: Progress
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from qaserve.evaluation.run import evaluate

    size = max(1, -(-len(qas) // STEPS))
    if options["mode"] == "concurrent":  # keep every client busy within a chunk
        size = max(size, 2 * options["concurrency"])
    parts = []
    for start in range(0, len(qas), size):
        report(start / len(qas), f"{options['mode']}: {start} of {len(qas)} questions answered")
        parts.append(evaluate(qas[start : start + size], **options))
    return merge_runs(parts)


def merge_runs(
    parts: list[tuple[list[dict[str, Any]], dict[str, Any]]],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Records and summary of consecutive `evaluate` calls, as if they were one call."""
    from qaserve.evaluation.scoring import mean

    records: list[dict[str, Any]] = []
    for part_records, _ in parts:
        records += [{**r, "index": len(records) + i} for i, r in enumerate(part_records)]
    summaries = [summary for _, summary in parts]
    summary: dict[str, Any] = dict(summaries[0]) if summaries else {"n": 0}
    for key in SUMMED:
        summary[key] = sum(s.get(key) or 0 for s in summaries)
    summary["accuracy_grader"] = mean([r["rougeL_f1_raw"] for r in records])
    summary["accuracy_cjk"] = mean([r["rougeL_f1_cjk"] for r in records])
    seconds, chars = summary.get("post_seconds") or 0.0, summary.get("chars") or 0
    summary["chars_per_s"] = chars / seconds if seconds > 0 else 0.0
    summary["wall_chars_per_s"] = chars / summary["wall_s"] if summary.get("wall_s") else 0.0
    summary["sets"] = dict(sum((Counter(s.get("sets") or {}) for s in summaries), Counter()))
    summary["tokens"] = summary["tokens_per_s"] = None  # no tokenizer in the console
    return records, summary


def _clip(value: Any) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= CELL_LIMIT else text[: CELL_LIMIT - 1] + "…"


def table_rows(records: list[dict[str, Any]]) -> list[list[Any]]:
    """One row per question for the console's table (long texts clipped)."""
    return [
        [
            r["index"],
            _clip(r["question"]),
            _clip(r["ref"]),
            _clip(r["pred_raw"]),
            round(float(r["rougeL_f1_raw"]), 4),
            round(float(r["rougeL_f1_cjk"]), 4),
            r["chars"],
            "" if r.get("latency_s") is None else round(float(r["latency_s"]), 3),
            r.get("error") or "",
        ]
        for r in records
    ]


def write_outputs(
    records: list[dict[str, Any]], summary: dict[str, Any], out_dir: Path
) -> dict[str, Path]:
    """The per-question JSONL, the summary JSON and the report (Markdown, HTML, plots)."""
    from qaserve.evaluation.report import write_report
    from qaserve.evaluation.run import write_jsonl

    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl = out_dir / "records.jsonl"
    write_jsonl(records, jsonl, overwrite=True)
    summary_path = out_dir / "summary.json"
    text = json.dumps(summary, ensure_ascii=False, indent=1)
    summary_path.write_text(text + "\n", encoding="utf-8")
    paths = write_report(records, summary, out_dir)
    return {"jsonl": jsonl, "summary": summary_path, **{p.name: p for p in paths}}


def summary_markdown(summary: dict[str, Any]) -> str:
    """The grader's two numbers first, then the CJK-aware score and what else went on."""
    n = summary.get("n", 0)
    lines = [
        "| figure | value |",
        "|---|---|",
        f"| **accuracy (grader RougeL)** | **{summary.get('accuracy_grader', 0.0):.4f}** |",
        f"| **speed (grader, chars/s)** | **{summary.get('chars_per_s', 0.0):,.1f}** |",
        f"| CJK-aware RougeL | {summary.get('accuracy_cjk', 0.0):.4f} |",
        f"| questions | {n} ({summary.get('mode', '?')} mode, {summary.get('posts', 0)} POSTs) |",
        f"| answer characters | {summary.get('chars', 0):,} |",
        f"| POST time (s) | {summary.get('post_seconds', 0.0):,.2f} |",
        f"| errors / empty answers | {summary.get('errors', 0)} / {summary.get('empty', 0)} |",
    ]
    if summary.get("errors"):
        lines.append("")
        lines.append("Failed questions count as empty answers, as the grader would score them.")
    return "\n".join(lines)
