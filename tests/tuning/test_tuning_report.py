"""The study report's figures: accuracy with its 95 % interval, chars/s with its range over runs.

pytest tests/tuning/test_tuning_report.py -q
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest

from qaserve.tuning.report import PLOTS, accuracy_cell, speed_cell, write_report
from qaserve.tuning.store import Summary
from qaserve.tuning.trial import aggregate


def run(speed: float, acc: float, interval: tuple[float, float] | None) -> dict[str, Any]:
    """One evaluation run as a trial stores it (no interval: stored by an older version)."""
    bounds = {} if interval is None else {
        "accuracy_grader_lo": interval[0], "accuracy_grader_hi": interval[1],
        "accuracy_cjk_lo": interval[0], "accuracy_cjk_hi": interval[1],
    }  # fmt: skip
    return {"n": 100, "accuracy_grader": acc, "accuracy_cjk": acc, "chars_per_s": speed, **bounds}


def row(number: int, metrics: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A `trial_row` of a complete trial with these aggregated metrics."""
    return {
        "trial": number, "state": "COMPLETE", "kind": "ok", "reference": number == 0,
        "duplicate_of": None, "feasible": True, "env": {"MAX_NUM_SEQS": str(number)},
        "chars_per_s": metrics["chars_per_s"], "tokens_per_s": None, "error": None, "log": None,
        **{k: metrics.get(k) for k in (
            "chars_per_s_std", "chars_per_s_min", "chars_per_s_max", "accuracy_grader",
            "accuracy_grader_lo", "accuracy_grader_hi", "accuracy_cjk",
        )},
        **extra,
    }  # fmt: skip


def test_aggregate_keeps_the_interval_and_the_range_over_runs() -> None:
    metrics = aggregate([run(1000.0, 0.45, (0.41, 0.49)), run(1100.0, 0.45, (0.43, 0.49))])
    assert (metrics["chars_per_s_min"], metrics["chars_per_s_max"]) == (1000.0, 1100.0)
    assert (
        metrics["accuracy_grader_lo"] == pytest.approx(0.42)
        and metrics["accuracy_grader_hi"] == 0.49
    )
    old = aggregate([run(1000.0, 0.45, None), run(1100.0, 0.45, (0.41, 0.49))])
    assert old["accuracy_grader_lo"] is None  # not every run knows it: not made up


def test_cells_show_interval_and_range_where_known() -> None:
    both = row(1, aggregate([run(1200.0, 0.45, (0.41, 0.49)), run(1260.0, 0.45, (0.41, 0.49))]))
    assert accuracy_cell(both) == "0.4500 [0.4100, 0.4900]"
    assert speed_cell(both) == "1230.0 (1200.0–1260.0)"
    once = row(2, aggregate([run(900.0, 0.40, None)]))  # one run, an older study
    assert accuracy_cell(once) == "0.4000" and speed_cell(once) == "900.0"


def test_report_markdown_and_scatter(tmp_path: Path) -> None:
    ref = row(0, aggregate([run(1000.0, 0.44, None), run(1010.0, 0.44, None)]))
    best = row(1, aggregate([run(1200.0, 0.45, (0.41, 0.49)), run(1260.0, 0.45, (0.41, 0.49))]))
    summary = Summary("s", 0.35, [ref, best], reference=ref, best=best)
    paths = write_report(optuna.create_study(), summary, tmp_path)
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths if p.name in PLOTS)
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "| best | 1 | 1230.0 (1200.0–1260.0) | 0.4500 [0.4100, 0.4900] |" in text
    assert "| reference | 0 | 1005.0 (1000.0–1010.0) | 0.4400 |" in text
    assert "95 % bootstrap interval over the questions" in text
    top = text.split("## Top")[1]
    assert "0.4500 [0.4100, 0.4900]" in top and "accuracy [95 %]" in top
