"""The tuner's records without an engine: atomic writes, the JSONL, feasibility against ACC,
the best trial, best_params.json and best.env.

    pytest tests/tuning/test_store.py -q
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from qaserve.tuning import store


def trial(
    number: int, speed: float | None, acc: float | None, seqs: int | None = None, **attrs: Any
) -> optuna.trial.FrozenTrial:
    """A finished trial as the tuner stores it (speed None: failed)."""
    params = {} if seqs is None else {"MAX_NUM_SEQS": seqs}
    dists = {k: CategoricalDistribution([4, 8, 16, 32]) for k in params}
    metrics = {"accuracy_grader": acc, "accuracy_cjk": acc, "chars_per_s": speed}
    result = {
        "kind": "ok" if speed else "start_failed",
        "log": f"/logs/{number}.log",
        "metrics": metrics if speed else {},
        "error": None if speed else "boom\nmore",
        "seconds": 10.0,
    }
    result = None if attrs.get("interrupted") else result  # killed: no result was stored
    attrs = {"result": result, "overrides": {k: str(v) for k, v in params.items()}, **attrs}
    state = TrialState.COMPLETE if speed else TrialState.FAIL
    frozen = create_trial(
        state=state, value=speed, params=params, distributions=dists, user_attrs=attrs
    )
    frozen.number = number
    return frozen


TRIALS = [
    trial(0, 100.0, 0.50, reference=True),
    trial(1, 150.0, 0.40, seqs=8),
    trial(2, 300.0, 0.20, seqs=32),  # fastest, but below ACC
    trial(3, None, None, seqs=16),
    trial(4, None, None, seqs=4, interrupted=True),
]


def test_atomic_write_replaces_whole_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "best_params.json"
    store.write_json_atomic(path, {"v": 1})
    store.write_json_atomic(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["best_params.json"]  # no temporary left

    def crash(src: Any, dst: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.write_json_atomic(path, {"v": 3})
    assert json.loads(path.read_text()) == {"v": 2}  # a failed write leaves the old file whole


def test_jsonl_skips_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    store.append_jsonl(path, {"trial": 0})
    store.append_jsonl(path, {"trial": 1})
    with open(path, "a") as f:
        f.write('{"trial": 2, "sta')  # killed mid-write
    assert store.read_jsonl(path) == [{"trial": 0}, {"trial": 1}]


@pytest.mark.parametrize(
    ("acc", "drop", "ref", "want"),
    [
        (0.35, None, 0.5, 0.35),
        (0.35, 0.05, 0.5, 0.45),
        (0.35, 0.3, 0.5, 0.35),
        (0.35, 0.05, None, 0.35),
    ],
)
def test_threshold(acc: float, drop: float | None, ref: float | None, want: float) -> None:
    assert store.threshold(acc, drop, ref) == pytest.approx(want)


def test_summary_best_is_fastest_feasible() -> None:
    summary = store.summarize("s", TRIALS, acc=0.35, acc_drop=None)
    assert summary.reference and summary.reference["trial"] == 0
    assert summary.best and summary.best["trial"] == 1  # trial 2 is faster but below ACC
    assert [r["feasible"] for r in summary.rows] == [True, True, False, False, False]
    assert summary.counts == {
        "finished": 4,
        "complete": 3,
        "feasible": 2,
        "failed": 1,
        "interrupted": 1,
    }
    assert summary.improvement() == {
        "chars_per_s_ratio": 1.5,
        "chars_per_s_pct": 50.0,
        "accuracy_grader_delta": -0.1,
        "within_spread": False,
    }
    # ACC_DROP 0.05 below the reference (0.50): trial 1 (0.40) no longer qualifies
    strict = store.summarize("s", TRIALS, acc=0.35, acc_drop=0.05)
    assert strict.acc_threshold == pytest.approx(0.45)
    assert strict.best and strict.best["trial"] == 0


def test_rows_are_greppable_records() -> None:
    rows = store.summarize("s", TRIALS, acc=0.35, acc_drop=None).rows
    failed = rows[3]
    assert failed["state"] == "FAIL" and failed["kind"] == "start_failed"
    assert failed["log"] == "/logs/3.log" and failed["error"].startswith("boom")
    assert rows[4]["kind"] == "interrupted" and "interrupted" in rows[4]["error"]
    assert rows[1]["env"] == {"MAX_NUM_SEQS": "8"} and rows[1]["params"] == {"MAX_NUM_SEQS": 8}
    json.dumps(rows)  # JSON-able as they are


def test_reconcile_appends_only_missing_lines(tmp_path: Path) -> None:
    path = tmp_path / "tune_results.jsonl"
    summary = store.summarize("s", TRIALS, acc=0.35, acc_drop=None)
    store.append_jsonl(path, summary.rows[0])
    store.append_jsonl(path, {**summary.rows[0], "study": "other"})  # another study's line
    assert store.reconcile_jsonl(path, summary) == 4
    assert store.reconcile_jsonl(path, summary) == 0
    assert sorted(r["trial"] for r in store.read_jsonl(path) if r["study"] == "s") == [
        0,
        1,
        2,
        3,
        4,
    ]


def test_best_params_and_env_file() -> None:
    summary = store.summarize("s", TRIALS, acc=0.35, acc_drop=None)
    doc = store.best_params_doc(summary, {"MODEL_DIR": "/m"})
    assert doc["best"]["params"] == {"MAX_NUM_SEQS": 8}
    assert doc["best"]["env"] == {"MAX_NUM_SEQS": "8"}
    assert doc["improvement"]["chars_per_s_pct"] == 50.0
    assert doc["shell"] == "MAX_NUM_SEQS=8 bash run_model.sh"
    assert doc["fixed_env"] == {"MODEL_DIR": "/m"}
    text = store.best_env_text(doc)
    assert "MAX_NUM_SEQS=8" in text.splitlines() and text.startswith("# best of study s")


def test_best_params_without_a_feasible_trial() -> None:
    summary = store.summarize("s", TRIALS, acc=0.9, acc_drop=None)
    doc = store.best_params_doc(summary, {})
    assert doc["best"] is None and "no trial" in doc["note"]
    assert "no trial" in store.best_env_text(doc)


def test_reference_best_says_keep_settings() -> None:
    summary = store.summarize("s", TRIALS[:1], acc=0.35, acc_drop=None)
    doc = store.best_params_doc(summary, {})
    assert doc["best"]["trial"] == 0 and "keep them" in doc["note"]
    assert doc["best"]["env"] == {}


def test_twin_ignores_reference_and_interrupted() -> None:
    assert store.find_twin(TRIALS, {"MAX_NUM_SEQS": 8}).number == 1
    assert store.find_twin(TRIALS, {"MAX_NUM_SEQS": 16}).number == 3  # failed: not run again
    assert store.find_twin(TRIALS, {"MAX_NUM_SEQS": 4}) is None  # interrupted: run again
    assert store.find_twin(TRIALS, {}) is None  # the reference is never a twin


def test_gain_within_the_spread_is_flagged() -> None:
    ref = {"trial": 0, "chars_per_s": 100.0, "chars_per_s_std": 30.0, "accuracy_grader": 0.5}
    best = {"trial": 1, "chars_per_s": 140.0, "chars_per_s_std": 15.0, "accuracy_grader": 0.5}
    summary = store.Summary("s", 0.35, [], ref, best)
    assert summary.improvement()["within_spread"] is True  # +40 vs a spread of 45
    best["chars_per_s_std"] = 5.0
    assert summary.improvement()["within_spread"] is False
