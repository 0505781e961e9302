"""The evaluation report: Markdown, self-contained HTML, PNG plots, terminal table.

pytest -q tests/evaluation/test_report.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console

from qaserve.evaluation.report import PLOTS, main, summary_table, write_report
from qaserve.evaluation.summary import RunSummary

PNGS = (*PLOTS, "latency.png")  # one set, sequential


def make_records(n: int = 25, batch: bool = False) -> list[dict[str, Any]]:
    records = []
    for i in range(n):
        pred = "" if i == 3 else f"答案{i} uses warp {i} | pipe" * (i % 4 + 1)
        records.append(
            {
                "index": i,
                "set": "basic",
                "question": f"问题{i}：什么是warp？<b>",
                "ref": f"参考{i} warp {i}",
                "pred_raw": pred,
                "rougeL_f1_raw": (i % 10) / 10,
                "rougeL_f1_cjk": ((i * 7) % 10) / 10,
                "chars": len(pred),
                "latency_s": 2.0 if batch else 0.1 + i / 50,
                "output_tokens_raw": None if i == 5 else 10 + i,
                "error": "HTTP 500: engine failed" if i == 3 else None,
            }
        )
    return records


def make_summary(records: list[dict[str, Any]], mode: str = "sequential") -> dict[str, Any]:
    return {
        "n": len(records),
        "mode": mode,
        "accuracy_grader": 0.45,
        "accuracy_cjk": 0.5,
        "chars": 1234,
        "post_seconds": 2.5,
        "chars_per_s": 493.6,
        "tokens": 700,
        "tokens_per_s": 280.0,
        "errors": 1,
        "empty": 1,
        "endpoint": "http://127.0.0.1:8000/predict",
        "started": "2026-11-02T10:00:00",
    }


def test_write_report_writes_all_files(tmp_path: Path) -> None:
    records = make_records()
    paths = write_report(records, RunSummary.from_dict(make_summary(records)), tmp_path / "rep")
    names = {p.name for p in paths}
    assert names == {"report.md", "report.html", *PNGS}
    for name in PNGS:
        data = (tmp_path / "rep" / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 1000
    page = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    assert page.count("<img src='data:image/png;base64,") == len(PNGS)  # one file, plots inside
    assert ".png" not in page
    assert "http" not in page.replace("http://127.0.0.1:8000/predict", "")  # no CDN
    assert "<b>" not in page and "&lt;b&gt;" in page  # question text is escaped
    md = (tmp_path / "rep" / "report.md").read_text(encoding="utf-8")
    assert all(f"]({name})" in md for name in PNGS)
    assert "accuracy_grader | 0.4500" in md
    assert "HTTP 500: engine failed" in md and "HTTP 500: engine failed" in page


def test_worst_and_best_sections(tmp_path: Path) -> None:
    records = make_records()
    write_report(records, RunSummary.from_dict(make_summary(records)), tmp_path)
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    worst = md.split("## 10 worst")[1].split("## 10 best")[0]
    best = md.split("## 10 best")[1].split("## Errors")[0]
    assert worst.count("\n| ") == 11 and best.count("\n| ") == 11  # header + 10 rows
    assert "| 0.0000 |" in worst and "| 0.9000 |" in best
    assert "| 0.9000 |" not in worst
    assert "\\|" in md  # a "|" inside an answer does not break the table


def test_batch_mode_and_tiny_runs(tmp_path: Path) -> None:
    records = make_records(1, batch=True)
    summary = make_summary(records, mode="batch") | {"wait_seconds": 3.0}
    paths = write_report(records, RunSummary.from_dict(summary), tmp_path / "one")
    assert {p.name for p in paths} == {"report.md", "report.html", *PLOTS}
    paths = write_report([], RunSummary(), tmp_path / "none")
    assert all(p.exists() for p in paths)


def test_plots_drawn_only_where_they_answer_something(tmp_path: Path) -> None:
    records = make_records(40, batch=True)
    for r in records[:15]:
        r["set"] = "bonus"
    summary = RunSummary.from_dict(make_summary(records, mode="batch"))
    (tmp_path / "time.png").write_bytes(b"stale")  # an earlier version's plot
    (tmp_path / "latency.png").write_bytes(b"stale")  # an earlier sequential run's
    paths = write_report(records, summary, tmp_path)
    pngs = {p.name for p in paths if p.suffix == ".png"}
    assert pngs == {*PLOTS, "sets.png"}  # two sets; batch: no latency, no two equal bars
    assert {p.name for p in tmp_path.glob("*.png")} == pngs
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "](sets.png)" in md and "latency" not in md
    records = make_records(40)
    for mode in ("sequential", "concurrent"):  # latencies vary: their histogram is drawn
        summary = RunSummary.from_dict(make_summary(records, mode=mode))
        assert "latency.png" in {p.name for p in write_report(records, summary, tmp_path / mode)}


def test_accuracy_intervals_in_every_table(tmp_path: Path) -> None:
    records = make_records(40)
    summary = RunSummary.from_records(records)
    for metric in ("grader", "cjk"):
        low, high = summary.interval(metric) or (1.0, 0.0)
        assert low <= getattr(summary, f"accuracy_{metric}") <= high and low < high
    write_report(records, summary, tmp_path)
    low, high = summary.interval("grader") or (0, 0)
    shown = f"accuracy_grader | {summary.accuracy_grader:.4f} (95 % CI {low:.4f}–{high:.4f}) |"
    assert shown in (tmp_path / "report.md").read_text(encoding="utf-8")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert f"{low:.4f}–{high:.4f}" in page and "accuracy_grader_lo" not in page
    console = Console(width=120, record=True)
    console.print(summary_table(summary))
    assert f"{low:.4f}–{high:.4f}" in console.export_text()


def test_a_summary_without_intervals_takes_the_records(tmp_path: Path) -> None:
    records = make_records(30)
    old = RunSummary.from_dict(make_summary(records))  # a file written before the intervals
    assert old.interval("grader") is None
    write_report(records, old, tmp_path)
    low, high = RunSummary.from_records(records).interval("cjk") or (0, 0)
    assert f"(95 % CI {low:.4f}–{high:.4f})" in (tmp_path / "report.md").read_text("utf-8")


def test_summary_table_lists_every_field() -> None:
    summary = make_summary(make_records()) | {"extra": "x"}
    console = Console(width=120, record=True)
    console.print(summary_table(RunSummary.from_dict(summary)))
    text = console.export_text()
    for key in summary:
        assert key in text
    assert "0.4500" in text and "493.6" in text


def test_cli_rebuilds_a_report_from_jsonl(tmp_path: Path) -> None:
    records = make_records(5)
    path = tmp_path / "run.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n")
    main([str(path), "--out", str(tmp_path / "rep")])
    assert (tmp_path / "rep" / "report.html").exists()
    assert RunSummary.from_records(records).empty == 0  # the one "" failed: an error


def test_summary_files_of_other_versions_read_back(tmp_path: Path) -> None:
    old = make_summary([]) | {"wait_seconds": 3.0}  # no posts/wall_s yet; a key unknown here
    (tmp_path / "old.json").write_text(json.dumps(old), encoding="utf-8")
    summary = RunSummary.read(tmp_path / "old.json")
    assert summary.chars_per_s == 493.6 and summary.wall_s is None
    assert summary.accuracy_grader_lo is None and summary.interval("cjk") is None
    assert summary.others == {"wait_seconds": 3.0}
    summary.write(tmp_path / "again.json")
    again = json.loads((tmp_path / "again.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in again.items() if v is not None} == old
