"""Comparing two runs question by question.

pytest -q tests/evaluation/test_compare.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from qaserve.evaluation.compare import (
    changes_table,
    compare_runs,
    compare_table,
    load_records,
    main,
    verdict,
)


def rec(i: int, q: str, grader: float, cjk: float, pred: str = "p") -> dict[str, Any]:
    return {"index": i, "question": q, "ref": "r", "pred_raw": pred,
            "rougeL_f1_raw": grader, "rougeL_f1_cjk": cjk}  # fmt: skip


A = [rec(0, "Q0", 0.2, 0.5), rec(1, "Q1", 0.5, 0.5), rec(2, "Q2", 0.9, 0.8), rec(3, "Qa", 0.1, 0.1)]
# B: reordered, Q0 better, Q2 worse, Q1 same, Qa gone, Qb new
B = [rec(0, "Q2", 0.4, 0.6), rec(1, "Q0", 0.7, 0.9), rec(2, "Q1", 0.5, 0.7), rec(3, "Qb", 1.0, 1.0)]


def test_matched_by_question_text() -> None:
    result = compare_runs(A, B)
    assert result["n_matched"] == 3
    assert [i["question"] for i in result["improved"]] == ["Q0"]
    assert [i["question"] for i in result["worsened"]] == ["Q2"]
    assert [i["question"] for i in result["unchanged"]] == ["Q1"]
    assert result["only_a"] == ["Qa"] and result["only_b"] == ["Qb"]
    q0 = result["improved"][0]
    assert q0["delta_grader"] == pytest.approx(0.5) and q0["delta_cjk"] == pytest.approx(0.4)
    assert (q0["index_a"], q0["index_b"]) == (0, 1)


def test_means_of_both_runs_and_of_the_matched_part() -> None:
    result = compare_runs(A, B)
    assert result["mean_a"]["grader"] == pytest.approx((0.2 + 0.5 + 0.9 + 0.1) / 4)
    assert result["mean_b"]["cjk"] == pytest.approx((0.6 + 0.9 + 0.7 + 1.0) / 4)
    assert result["matched_mean_a"]["grader"] == pytest.approx((0.2 + 0.5 + 0.9) / 3)
    assert result["matched_mean_b"]["grader"] == pytest.approx((0.4 + 0.7 + 0.5) / 3)


def test_tolerance_and_repeated_questions() -> None:
    a = [rec(0, "Q", 0.5, 0.5), rec(1, "Q", 0.1, 0.1), rec(2, "", 0.3, 0.3)]
    b = [rec(0, "Q", 0.5 + 1e-12, 0.5), rec(1, "Q", 0.6, 0.1), rec(2, "", 0.3, 0.3)]
    result = compare_runs(a, b)
    assert result["n_matched"] == 3  # second "Q" pairs with second "Q"; "" pairs by index
    assert len(result["unchanged"]) == 2 and len(result["improved"]) == 1
    assert result["improved"][0]["index_a"] == 1


def test_missing_scores_are_computed_from_ref_and_pred() -> None:
    old = [{"question": "Q", "ref": "a b c d", "pred_raw": "a c d e"}]
    result = compare_runs(old, old)
    assert result["mean_a"] == pytest.approx({"grader": 0.75, "cjk": 0.75})


def test_empty_runs() -> None:
    result = compare_runs([], [])
    assert result["n_matched"] == 0 and result["mean_a"]["grader"] == 0.0
    assert result["verdict"]["grader"] == "no question in both runs"


def test_tables_render() -> None:
    console = Console(width=140, record=True)
    result = compare_runs(A, B)
    console.print(compare_table(result))
    console.print(changes_table(result))
    text = console.export_text()
    assert "+0.5000" in text and "-0.5000" in text and "1 / 1 / 1" in text


def test_load_records_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, rows in (("a.jsonl", A), ("b.jsonl", B)):
        (tmp_path / name).write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert load_records(tmp_path / "a.jsonl") == A
    main([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")])
    assert "run A vs run B" in capsys.readouterr().out
    (tmp_path / "bad.jsonl").write_text("{}\n{oops\n")
    with pytest.raises(ValueError, match="bad.jsonl:2"):
        load_records(tmp_path / "bad.jsonl")


def score(rng: random.Random) -> float:
    return 0.0 if rng.random() < 0.3 else rng.random()  # grader-like: many zeros


def run(n: int, shift: float = 0.0, changed: float = 0.0, seed: int = 0) -> list[dict[str, Any]]:
    """n questions with seeded grader-like scores; a share `changed` of them answered anew (a
    score drawn from the same distribution), then every score moved by `shift`."""
    base, other = random.Random(1), random.Random(seed)
    rows = []
    for i in range(n):
        value = score(base)
        if other.random() < changed:
            value = score(other)
        value = min(1.0, max(0.0, value + shift))
        rows.append(rec(i, f"Q{i}", value, value))
    return rows


def test_identical_ish_runs_are_within_noise() -> None:
    same = compare_runs(run(300), run(300))
    assert same["delta_interval"]["grader"] == (0.0, 0.0)
    assert same["verdict"] == {"grader": "within noise", "cjk": "within noise"}
    rerun = compare_runs(run(300), run(300, changed=0.2, seed=2))  # another answer to 1 in 5
    low, high = rerun["delta_interval"]["grader"]
    assert low < 0 < high and rerun["verdict"]["grader"] == "within noise"


def test_clearly_different_runs_say_which_is_better() -> None:
    better = compare_runs(run(300), run(300, shift=0.05, changed=0.2, seed=3))
    assert better["delta_interval"]["grader"][0] > 0
    assert better["verdict"] == {"grader": "B better", "cjk": "B better"}
    worse = compare_runs(run(300, shift=0.05), run(300))
    assert worse["verdict"]["grader"] == "A better"
    # a gain on few questions, most answered anew: not shown to be real
    few = compare_runs(run(12), run(12, shift=0.05, changed=0.8, seed=3))
    assert few["verdict"]["grader"] == "within noise"


def test_each_runs_interval_contains_its_mean() -> None:
    result = compare_runs(run(100), run(80, shift=0.1))
    for side in ("a", "b"):
        for metric in ("grader", "cjk"):
            low, high = result[f"interval_{side}"][metric]
            assert low <= result[f"mean_{side}"][metric] <= high and low < high
    assert verdict((-0.01, 0.02)) == "within noise" and verdict((0.0, 0.0)) == "within noise"
    assert verdict((0.001, 0.02)) == "B better" and verdict((-0.03, -0.001)) == "A better"


def test_the_table_shows_intervals_and_the_verdict() -> None:
    console = Console(width=160, record=True)
    console.print(compare_table(compare_runs(run(200), run(200, shift=0.1))))
    text = console.export_text()
    assert "grader verdict" in text and "B better" in text and "paired 95 %" in text
    console = Console(width=160, record=True)
    console.print(compare_table(compare_runs(run(200), run(200))))
    assert "within noise" in console.export_text()
