"""Evaluation report: Markdown + self-contained HTML + PNG plots from per-question records.

python -m qaserve.evaluation.report runs/eval.jsonl --out runs/report   # rebuild from a JSONL
"""

from __future__ import annotations

import argparse
import html
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qaserve.evaluation.compare import load_records
from qaserve.evaluation.summary import RunSummary, record_score

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
PLOTS = ("scores_hist.png", "score_vs_length.png", "time.png")
TEXT_LIMIT = 300


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def _summary_rows(summary: RunSummary) -> list[tuple[str, str]]:
    return [(k, _fmt(v)) for k, v in summary.as_dict().items()]


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


def _time_fields(summary: dict[str, Any]) -> dict[str, float]:
    # numeric summary fields named *seconds / *_s (not rates *_per_s): where the time went
    # (`summary` is the file's object: keys of other versions count too)
    return {
        k: float(v)
        for k, v in summary.items()
        if k.endswith(("seconds", "_s"))
        and not k.endswith("_per_s")
        and isinstance(v, (int, float))
        and not isinstance(v, bool)
    }


def _plot_scores(records: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    bins = [i / 20 for i in range(21)]
    scores = [[record_score(r, key) for r in records] for key in ("rougeL_f1_raw", "rougeL_f1_cjk")]
    # side by side, not overlaid: the two distributions often coincide on synthetic data
    ax.hist(scores, bins=bins, label=["grader (ASCII)", "CJK-aware"])
    ax.set(xlabel="RougeL F1", ylabel="questions", title="Score distribution", xlim=(0, 1))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def _plot_length(records: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    chars = [int(r.get("chars") or len(r.get("pred_raw") or "")) for r in records]
    for key, label, marker in (
        ("rougeL_f1_raw", "grader (ASCII)", "o"),
        ("rougeL_f1_cjk", "CJK-aware", "x"),
    ):
        ax.scatter(
            chars, [record_score(r, key) for r in records], label=label, marker=marker, alpha=0.6
        )
    ax.set(xlabel="answer characters", ylabel="RougeL F1", title="Score vs answer length")
    ax.set_ylim(-0.02, 1.02)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def _plot_time(records: list[dict[str, Any]], summary: RunSummary, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    latencies = [float(r["latency_s"]) for r in records if r.get("latency_s") is not None]
    if summary.mode != "batch" and len(set(latencies)) > 1:
        ax.hist(latencies, bins=min(30, max(5, int(math.sqrt(len(latencies))) * 2)))
        ax.set(xlabel="seconds per request", ylabel="requests", title="Request latency")
    else:
        fields = _time_fields(summary.as_dict()) or {"post_seconds": 0.0}
        ax.barh(list(fields), list(fields.values()))
        ax.set(xlabel="seconds", title="Where the time went")
    rate = summary.chars_per_s
    if isinstance(rate, (int, float)):
        ax.set_title(f"{ax.get_title()} ({rate:,.1f} chars/s)")
    fig.tight_layout()
    fig.savefig(path)


def write_plots(records: list[dict[str, Any]], summary: RunSummary, out_dir: Path) -> list[Path]:
    """The three PNGs, drawn on Agg through `Figure` (no pyplot global state)."""
    from matplotlib import rc_context

    paths = [out_dir / name for name in PLOTS]
    font = _cjk_font()
    with rc_context({"font.sans-serif": [font, "DejaVu Sans"]} if font else None):
        _plot_scores(records, paths[0])
        _plot_length(records, paths[1])
        _plot_time(records, summary, paths[2])
    return paths


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


def _markdown(records: list[dict[str, Any]], summary: RunSummary) -> str:
    lines = ["# qaserve evaluation report", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_md_cell(v)} |" for k, v in _summary_rows(summary)]
    lines.append("")
    lines += [f"![{name[:-4]}]({name})" for name in PLOTS]
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


def _html(records: list[dict[str, Any]], summary: RunSummary) -> str:
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>qaserve evaluation</title>",
        f"<style>{STYLE}</style></head><body><h1>qaserve evaluation report</h1>",
        _html_table(["metric", "value"], [list(row) for row in _summary_rows(summary)]),
    ]
    parts += [f"<p><img src='{name}' alt='{name[:-4]}'></p>" for name in PLOTS]
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
    """Write report.md, report.html and the PNG plots into out_dir; return the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots = write_plots(records, summary, out_dir)
    md, page = out_dir / "report.md", out_dir / "report.html"
    md.write_text(_markdown(records, summary), encoding="utf-8")
    page.write_text(_html(records, summary), encoding="utf-8")
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
