"""The web console's batch test: the evaluator's `evaluate()` with a progress bar, and its files.

python -c "from pathlib import Path; from qaserve.webui.batch import load_set, run_batch; \
print(run_batch(load_set(Path('set.jsonl')), 'http://127.0.0.1:8000')[1])"

`qaserve.evaluation.run.evaluate` does the asking and scoring and says how far it is: in batch
mode (the grader's way) there is one POST, so progress is its elapsed time against the timeout;
in sequential and concurrent modes it is the share of questions answered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qaserve.evaluation.report import write_report
from qaserve.evaluation.run import evaluate, resolve_mode, write_jsonl
from qaserve.evaluation.summary import RunSummary
from qaserve.questions import QA, load_questions, select

# (fraction done or None, description)
Progress = Callable[[float | None, str], None]
TABLE_HEADERS = ["#", "question", "reference", "answer", "grader", "CJK", "chars", "s", "error"]
CELL_LIMIT = 200  # the table stays readable; the JSONL keeps every character


def load_set(path: Path, max_n: int | None = None, dedupe: bool = False) -> list[QA]:
    """An uploaded question file (docx/jsonl/json/txt/csv), named after the file's stem."""
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
) -> tuple[list[dict[str, Any]], RunSummary]:
    """Ask and score every question with `evaluate`, telling `progress` how far it is."""
    mode = resolve_mode(endpoint, mode)
    report = progress or (lambda _fraction, _desc: None)

    def told(done: int, total: int, seconds: float) -> None:
        if mode == "batch":
            what = f"one POST /predict with {total} questions: {seconds:.0f} s"
            report(min(seconds / timeout_s, 0.99), what)
        else:
            what = f"{mode}: {done} of {total} questions answered"
            report(done / total if total else 1.0, what)

    return evaluate(
        qas, endpoint=endpoint, mode=mode, concurrency=concurrency, timeout_s=timeout_s,
        strip_q_suffix=strip_q_suffix, progress=told if progress else None,
    )  # fmt: skip


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
    records: list[dict[str, Any]], summary: RunSummary, out_dir: Path
) -> dict[str, Path]:
    """The per-question JSONL, the summary JSON and the report (Markdown, HTML, plots)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl = out_dir / "records.jsonl"
    write_jsonl(records, jsonl, overwrite=True)
    summary_path = out_dir / "summary.json"
    summary.write(summary_path)
    paths = write_report(records, summary, out_dir)
    return {"jsonl": jsonl, "summary": summary_path, **{p.name: p for p in paths}}


def _ci(summary: RunSummary, metric: str) -> str:
    interval = summary.interval(metric)
    return f" (95 % CI {interval[0]:.4f}–{interval[1]:.4f})" if interval else ""


def summary_markdown(summary: RunSummary) -> str:
    """The grader's two numbers first, then the CJK-aware score and what else went on."""
    grader = f"**{summary.accuracy_grader:.4f}**{_ci(summary, 'grader')}"
    lines = [
        "| figure | value |",
        "|---|---|",
        f"| **accuracy (grader RougeL)** | {grader} |",
        f"| **speed (grader, chars/s)** | **{summary.chars_per_s or 0.0:,.1f}** |",
        f"| CJK-aware RougeL | {summary.accuracy_cjk:.4f}{_ci(summary, 'cjk')} |",
        f"| questions | {summary.n} ({summary.mode or '?'} mode, {summary.posts or 0} POSTs) |",
        f"| answer characters | {summary.chars:,} |",
        f"| POST time (s) | {summary.post_seconds or 0.0:,.2f} |",
        f"| errors / empty answers | {summary.errors} / {summary.empty} |",
    ]
    if summary.errors:
        lines.append("")
        lines.append("Failed questions count as empty answers, as the grader would score them.")
    return "\n".join(lines)
