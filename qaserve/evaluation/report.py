"""Evaluation report: Markdown + self-contained HTML + PNG plots from per-question records.

The table holds the run's figures (each accuracy with its 95 % bootstrap interval); each plot
answers a question the table cannot: how scores spread, answer vs reference length, accuracy
per question set (two sets or more), request latency (one question per POST).

python -m qaserve.evaluation.report runs/eval.jsonl --out runs/report   # rebuild from a JSONL
"""

from __future__ import annotations

import argparse
import base64
import html
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from qaserve.evaluation.compare import load_records
from qaserve.evaluation.scoring import GRADER_PASS_LINE, bootstrap_interval, mean
from qaserve.evaluation.summary import SCORE_KEYS, RunSummary, record_score

if TYPE_CHECKING:
    from rich.table import Table

CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans CJK JP",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "SimHei",
    "Microsoft YaHei",
)
PLOTS = ("scores_hist.png", "lengths.png")  # drawn for every run
SETS_PLOT = "sets.png"  # with two question sets or more
LATENCY_PLOT = "latency.png"  # one question per POST (sequential, concurrent)
ALL_PLOTS = (*PLOTS, SETS_PLOT, LATENCY_PLOT)
RETIRED_PLOTS = ("score_vs_length.png", "time.png")  # earlier versions' names
LABELS = {"grader": "grader (ASCII)", "cjk": "CJK-aware"}
TEXT_LIMIT = 300


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def _summary_rows(summary: RunSummary) -> list[tuple[str, str]]:
    """(field, value) in summary.json's order; an accuracy's interval beside it, not below."""
    rows = []
    for key, value in summary.as_dict().items():
        metric = key.removeprefix("accuracy_")
        if metric in SCORE_KEYS:
            interval = summary.interval(metric)
            text = _fmt(value) + (f" (95 % CI {_span(interval)})" if interval else "")
            rows.append((key, text))
        elif not key.startswith(tuple(f"accuracy_{m}_" for m in SCORE_KEYS)):
            rows.append((key, _fmt(value)))
    return rows


def _span(interval: tuple[float, float]) -> str:
    return f"{interval[0]:.4f}–{interval[1]:.4f}"


def summary_table(summary: RunSummary) -> Table:
    """The summary as a two-column rich table for the terminal."""
    from rich.table import Table

    table = Table(title="qaserve evaluation", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in _summary_rows(summary):
        table.add_row(key, value)
    return table


def _cjk_font() -> str | None:
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in installed), None)


def _figure(height: float = 4) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(7, height), dpi=100)


def _plot_scores(records: list[dict[str, Any]], path: Path) -> None:
    """Is the mean made of many zeros and a few hits, or of middling answers everywhere?"""
    fig = _figure()
    ax = fig.add_subplot()
    bins = [i / 20 for i in range(21)]
    scores = [[record_score(r, key) for r in records] for key in SCORE_KEYS.values()]
    # side by side, not overlaid: the two distributions often coincide on synthetic data
    ax.hist(scores, bins=bins, label=[LABELS[m] for m in SCORE_KEYS])
    ax.set(xlabel="RougeL F1", ylabel="questions", title="Score distribution", xlim=(0, 1))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def _plot_lengths(records: list[dict[str, Any]], path: Path) -> None:
    """Are the answers over- or under-long against the references, and does it cost score?"""
    answered = [r for r in records if not r.get("error")]
    refs = [len(str(r.get("ref") or "")) for r in answered]
    chars = [len(r.get("pred_raw") or "") for r in answered]
    fig = _figure(5)
    ax = fig.add_subplot()
    points = ax.scatter(
        refs,
        chars,
        c=[record_score(r, "rougeL_f1_raw") for r in answered],
        cmap="viridis",
        vmin=0,
        vmax=1,
        s=18,
        alpha=0.8,
    )
    fig.colorbar(points, ax=ax, label="grader RougeL F1")
    top = max([*refs, *chars, 1])
    ax.plot([0, top], [0, top], "--", color="gray", label="same length (y = x)")
    ax.plot([0, top / 2], [0, top], ":", color="gray", label="2× and ½× the reference")
    ax.plot([0, top], [0, top / 2], ":", color="gray")
    longer = sum(1 for r, c in zip(refs, chars, strict=True) if c > 2 * r)
    shorter = sum(1 for r, c in zip(refs, chars, strict=True) if c < r / 2)
    ax.set(
        xlabel="reference characters",
        ylabel="answer characters",
        title=f"Answer vs reference length: {longer} over 2×, {shorter} under ½ "
        f"(of {len(answered)})",
        xlim=(0, top * 1.03),
        ylim=(0, top * 1.03),
    )
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    fig.savefig(path)


def by_set(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The records of each question set (the record's `set`: basic, bonus, a file's name)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        groups.setdefault(str(record.get("set") or "?"), []).append(record)
    return groups


def _plot_sets(groups: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Which question set pulls the accuracy down, and is the gap more than noise?"""
    fig = _figure(4.5)
    ax = fig.add_subplot()
    width = 0.38
    for offset, (metric, key) in zip((-width / 2, width / 2), SCORE_KEYS.items(), strict=True):
        scores = [[record_score(r, key) for r in rows] for rows in groups.values()]
        means = [mean(s) for s in scores]
        bounds = [bootstrap_interval(s) for s in scores]
        below = [m - low for m, (low, _) in zip(means, bounds, strict=True)]
        above = [high - m for m, (_, high) in zip(means, bounds, strict=True)]
        xs = [i + offset for i in range(len(groups))]
        bars = ax.bar(xs, means, width, yerr=[below, above], capsize=4, label=LABELS[metric])
        ax.bar_label(bars, fmt="%.3f", label_type="center", fontsize="small")
    ax.axhline(GRADER_PASS_LINE, color="red", ls="--", label=f"pass line {GRADER_PASS_LINE}")
    ax.set_xticks(range(len(groups)), [f"{name}\n({len(rows)} q)" for name, rows in groups.items()])
    ax.set(ylabel="mean RougeL F1", ylim=(0, 1), title="Accuracy per question set (95 % interval)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)


def _plot_latency(latencies: list[float], clients: int, path: Path) -> None:
    """How long does one question wait, and are there stragglers?"""
    fig = _figure()
    ax = fig.add_subplot()
    ax.hist(latencies, bins=min(30, max(5, int(math.sqrt(len(latencies))) * 2)))
    for q, style in ((50, "-"), (90, "--")):
        value = float(np.percentile(latencies, q))
        ax.axvline(value, color="black", ls=style, label=f"p{q} {value:.2f} s")
    ax.set(
        xlabel="seconds per request",
        ylabel="requests",
        title=f"Request latency ({len(latencies)} requests, {clients} at a time)",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def write_plots(records: list[dict[str, Any]], summary: RunSummary, out_dir: Path) -> list[Path]:
    """The plots that answer something for this run (see PLOTS), drawn on Agg through `Figure`
    (no pyplot global state); plots an earlier report left in out_dir and this one lacks go."""
    from matplotlib import rc_context

    draw: dict[str, Callable[[Path], None]] = {
        "scores_hist.png": lambda path: _plot_scores(records, path),
        "lengths.png": lambda path: _plot_lengths(records, path),
    }
    groups = by_set(records)
    if len(groups) > 1:  # one set: its accuracy is the table's
        draw[SETS_PLOT] = lambda path: _plot_sets(groups, path)
    latencies = [float(r["latency_s"]) for r in records if r.get("latency_s") is not None]
    if summary.mode != "batch" and len(set(latencies)) > 1:  # batch: one POST, its time is
        draw[LATENCY_PLOT] = lambda path: _plot_latency(latencies, summary.concurrency or 1, path)
    font = _cjk_font()
    with rc_context({"font.sans-serif": [font, "DejaVu Sans"]} if font else None):
        for name, plot in draw.items():
            plot(out_dir / name)
    for name in (*ALL_PLOTS, *RETIRED_PLOTS):
        if name not in draw:
            (out_dir / name).unlink(missing_ok=True)
    return [out_dir / name for name in draw]


def _clip(text: Any, limit: int = TEXT_LIMIT) -> str:
    s = "" if text is None else str(text)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _ranked(records: list[dict[str, Any]], n: int = 10) -> tuple[list[dict], list[dict]]:
    def key(r: dict[str, Any]) -> tuple[float, float]:
        return (record_score(r, "rougeL_f1_raw"), record_score(r, "rougeL_f1_cjk"))

    ordered = sorted(records, key=key)
    return ordered[:n], ordered[::-1][:n]


def _md_cell(text: Any) -> str:
    # escape HTML ("a < b", "<<<grid, block>>>" in code) before the <br> line breaks go in
    return html.escape(_clip(text), quote=False).replace("|", "\\|").replace("\n", "<br>")


def _markdown(records: list[dict[str, Any]], summary: RunSummary, plots: list[Path]) -> str:
    lines = ["# qaserve evaluation report", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_md_cell(v)} |" for k, v in _summary_rows(summary)]
    lines.append("")
    lines += [f"![{plot.stem}]({plot.name})" for plot in plots]
    worst, best = _ranked(records)
    for title, rows in (("10 worst (grader score)", worst), ("10 best (grader score)", best)):
        lines += ["", f"## {title}", "", "| # | question | ref | pred | grader | cjk |"]
        lines.append("|---|---|---|---|---|---|")
        lines += [
            f"| {r.get('index', '')} | {_md_cell(r.get('question'))} | {_md_cell(r.get('ref'))} "
            f"| {_md_cell(r.get('pred_raw'))} | {record_score(r, 'rougeL_f1_raw'):.4f} "
            f"| {record_score(r, 'rougeL_f1_cjk'):.4f} |"
            for r in rows
        ]
    errors = [r for r in records if r.get("error")]
    lines += ["", f"## Errors ({len(errors)})", ""]
    lines += [
        f"- #{r.get('index', '')} {_md_cell(r.get('question'))}: {r['error']}" for r in errors
    ]
    return "\n".join(lines) + "\n"


def _html_table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_clip(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
    "vertical-align:top;white-space:pre-wrap;text-align:left}img{max-width:100%}"
)


def _img(plot: Path) -> str:
    # inlined, so report.html is one file that shows its plots wherever it is downloaded to
    data = base64.b64encode(plot.read_bytes()).decode("ascii")
    return f"<p><img src='data:image/png;base64,{data}' alt='{html.escape(plot.stem)}'></p>"


def _html(records: list[dict[str, Any]], summary: RunSummary, plots: list[Path]) -> str:
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>qaserve evaluation</title>",
        f"<style>{STYLE}</style></head><body><h1>qaserve evaluation report</h1>",
        _html_table(["metric", "value"], [list(row) for row in _summary_rows(summary)]),
    ]
    parts += [_img(plot) for plot in plots]
    worst, best = _ranked(records)
    header = ["#", "question", "ref", "pred", "grader", "cjk"]
    for title, rows in (("10 worst (grader score)", worst), ("10 best (grader score)", best)):
        table_rows = [
            [
                r.get("index", ""),
                r.get("question"),
                r.get("ref"),
                r.get("pred_raw"),
                f"{record_score(r, 'rougeL_f1_raw'):.4f}",
                f"{record_score(r, 'rougeL_f1_cjk'):.4f}",
            ]
            for r in rows
        ]
        parts += [f"<h2>{html.escape(title)}</h2>", _html_table(header, table_rows)]
    errors = [
        [r.get("index", ""), r.get("question"), r["error"]] for r in records if r.get("error")
    ]
    parts += [f"<h2>Errors ({len(errors)})</h2>", _html_table(["#", "question", "error"], errors)]
    return "".join(parts) + "</body></html>\n"


def write_report(records: list[dict], summary: RunSummary, out_dir: Path) -> list[Path]:
    """Write report.md (it links the PNG plots), report.html (the plots inlined) and the PNGs
    into out_dir; return the paths written. A summary without intervals takes the records'."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summary.with_intervals(records)
    plots = write_plots(records, summary, out_dir)
    md, page = out_dir / "report.md", out_dir / "report.html"
    md.write_text(_markdown(records, summary, plots), encoding="utf-8")
    page.write_text(_html(records, summary, plots), encoding="utf-8")
    return [md, page, *plots]


def main(argv: list[str] | None = None) -> None:
    from rich.console import Console

    parser = argparse.ArgumentParser(description="Build a report from a per-question JSONL.")
    parser.add_argument("records", type=Path, help="per-question JSONL written by eval_local.py")
    parser.add_argument("--out", type=Path, default=Path("report"), help="output folder")
    parser.add_argument("--summary", type=Path, help="summary JSON (default: from the records)")
    args = parser.parse_args(argv)
    records = load_records(args.records)
    summary = RunSummary.read(args.summary) if args.summary else RunSummary.from_records(records)
    paths = write_report(records, summary, args.out)
    Console().print(summary_table(summary))
    print("\n".join(str(p) for p in paths))


if __name__ == "__main__":
    main()
