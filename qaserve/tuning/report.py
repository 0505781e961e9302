"""A study's report: optimisation history, parameter importances, accuracy vs speed with the
accuracy limit, and a Markdown summary (best vs reference, the best settings, top trials, failures).
Accuracy is shown with its 95 % bootstrap interval over the questions, chars/s with its range
over the trial's EVAL_RUNS runs.

    python auto_tune.py --report          # writes OUT_DIR/STUDY/report/

Plots are drawn with matplotlib's object API (no display needed). Importances need a few
finished trials with parameters; with fewer, the plot says so instead of failing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from qaserve.tuning.notify import changes, gain_line
from qaserve.tuning.store import Summary, now, write_text_atomic

log = logging.getLogger(__name__)

MIN_IMPORTANCE_TRIALS = 3
PLOTS = ("history.png", "importance.png", "accuracy_speed.png")
TOP_N = 15
SPREAD_NOTE = (
    "(accuracy: 95 % bootstrap interval over the questions; chars/s: lowest–highest of the "
    "trial's runs, shown where they differ)"
)


def write_report(study: Any, summary: Summary, out_dir: Path) -> list[Path]:
    """Write the three plots and report.md into `out_dir`; the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    history, importance, scatter = (out_dir / name for name in PLOTS)
    _plot_history(summary, history)
    importances, note = param_importances(study)
    _plot_importance(importances, note, importance)
    _plot_scatter(summary, scatter)
    markdown = out_dir / "report.md"
    write_text_atomic(markdown, _markdown(summary, importances, note))
    return [history, importance, scatter, markdown]


def _usable_trials(study: Any) -> list[Any]:
    """Complete trials that chose parameters themselves (not the reference, not a copy)."""
    return [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "COMPLETE"
        and t.params
        and not t.user_attrs.get("duplicate_of")
        and not t.user_attrs.get("reference")
    ]


def param_importances(study: Any) -> tuple[dict[str, dict[str, float]], str | None]:
    """{target: {param: importance}} for chars/s and accuracy, or a note saying why not."""
    import optuna

    trials = _usable_trials(study)
    if len(trials) < MIN_IMPORTANCE_TRIALS:
        return {}, (
            f"parameter importances need {MIN_IMPORTANCE_TRIALS} finished trials with "
            f"parameters; this study has {len(trials)}"
        )
    scratch = optuna.create_study(direction="maximize")  # in memory: the reference has no params
    scratch.add_trials(trials)
    # PED-ANOVA ranks what it takes to reach *low* target values: negate what we maximise
    targets = {
        "chars/s": lambda t: -float(t.value),
        "accuracy": lambda t: -float(t.user_attrs["result"]["metrics"]["accuracy_grader"]),
    }
    found: dict[str, dict[str, float]] = {}
    for name, target in targets.items():
        try:
            found[name] = _importance(optuna, scratch, target)
        except Exception as exc:  # evaluators refuse degenerate data in many ways
            return found, f"parameter importances could not be computed: {exc}"
    return found, None


def _importance(optuna: Any, study: Any, target: Any) -> dict[str, float]:
    import warnings

    evaluator = optuna.importance.PedAnovaImportanceEvaluator()  # Optuna 4's default needs sklearn
    with warnings.catch_warnings():  # its "low target values" reminder: negated above
        warnings.simplefilter("ignore")
        found = optuna.importance.get_param_importances(study, evaluator=evaluator, target=target)
    return dict(found)


def _figure(width: float = 8, height: float = 4.5) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _plot_history(summary: Summary, path: Path) -> None:
    from matplotlib.ticker import MaxNLocator

    fig = _figure()
    ax = fig.add_subplot()
    done = [r for r in summary.rows if r["state"] == "COMPLETE"]
    for feasible, style in ((True, "o"), (False, "x")):
        rows = [r for r in done if r["feasible"] == feasible]
        label = "meets accuracy" if feasible else "below accuracy"
        ax.plot([r["trial"] for r in rows], [r["chars_per_s"] for r in rows], style, label=label)
    failed = [r["trial"] for r in summary.rows if r["state"] == "FAIL"]
    if failed:
        ax.plot(failed, [0] * len(failed), "v", color="red", label="failed")
    best, steps = 0.0, []
    for r in sorted(done, key=lambda r: r["trial"]):
        best = max(best, r["chars_per_s"]) if r["feasible"] else best
        steps.append((r["trial"], best))
    if steps:
        ax.step(*zip(*steps, strict=True), where="post", label="best so far")
    if summary.reference:
        ax.axhline(summary.reference["chars_per_s"], ls="--", color="gray", label="reference")
    ax.set(xlabel="trial", ylabel="grader chars/s", title=f"Optimisation history: {summary.study}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)


def _plot_importance(found: dict[str, dict[str, float]], note: str | None, path: Path) -> None:
    fig = _figure(10, 4.5)
    if not found:
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, note or "no importances", ha="center", va="center", wrap=True)
    for i, (target, values) in enumerate(found.items()):
        ax = fig.add_subplot(1, len(found), i + 1)
        names = list(values)[::-1]
        ax.barh(names, [values[n] for n in names])
        ax.set(title=f"importance for {target}", xlabel="share")
        ax.tick_params(axis="y", labelsize="small")
    fig.tight_layout()
    fig.savefig(path)


def _plot_scatter(summary: Summary, path: Path) -> None:
    fig = _figure()
    ax = fig.add_subplot()
    done = [r for r in summary.rows if r["state"] == "COMPLETE" and r["duplicate_of"] is None]
    for feasible, label in ((True, "meets accuracy"), (False, "below accuracy")):
        rows = [r for r in done if r["feasible"] == feasible]
        if rows:  # bars: chars/s over the trial's runs, accuracy's 95 % interval
            xs, ys = [r["chars_per_s"] for r in rows], [r["accuracy_grader"] for r in rows]
            xerr = _errors(xs, [_speed_range(r) for r in rows])
            yerr = _errors(ys, [_interval(r) for r in rows])
            style = "o" if feasible else "x"
            ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, fmt=style, capsize=3, label=label)
    for r in done:
        point = (r["chars_per_s"], r["accuracy_grader"])
        ax.annotate(str(r["trial"]), point, xytext=(5, 5), textcoords="offset points", size=8)
    for row, marker, label in ((summary.reference, "*", "reference"), (summary.best, "o", "best")):
        if row:
            ax.scatter(
                [row["chars_per_s"]],
                [row["accuracy_grader"]],
                marker=marker,
                s=220,
                facecolors="none",
                edgecolors="black",
                label=label,
            )
    limit = summary.acc_threshold
    ax.axhline(limit, color="red", ls="--", label=f"accuracy limit {limit:.4f}")
    ax.set(xlabel="grader chars/s", ylabel="grader accuracy (RougeL)", title="Accuracy vs speed")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path)


def _speed_range(row: dict[str, Any]) -> tuple[float, float] | None:
    """chars/s (min, max) over the runs; ± the std for trials stored before the range was."""
    low, high = row.get("chars_per_s_min"), row.get("chars_per_s_max")
    if low is not None and high is not None:
        return low, high
    std = row.get("chars_per_s_std")
    return (row["chars_per_s"] - std, row["chars_per_s"] + std) if std else None


def _interval(row: dict[str, Any]) -> tuple[float, float] | None:
    low, high = row.get("accuracy_grader_lo"), row.get("accuracy_grader_hi")
    return None if low is None or high is None else (low, high)


def _errors(values: list[float], spans: list[tuple[float, float] | None]) -> list[list[float]]:
    """matplotlib's asymmetric error bars (below, above); 0 where a span is not known."""
    pairs = [(v - s[0], s[1] - v) if s else (0.0, 0.0) for v, s in zip(values, spans, strict=True)]
    return [[max(0.0, p[0]) for p in pairs], [max(0.0, p[1]) for p in pairs]]


def accuracy_cell(row: dict[str, Any]) -> str:
    """Grader accuracy with its 95 % interval: `0.4123 [0.3911, 0.4340]`."""
    span = _interval(row)
    text = f"{row['accuracy_grader']:.4f}"
    return text + (f" [{span[0]:.4f}, {span[1]:.4f}]" if span else "")


def speed_cell(row: dict[str, Any]) -> str:
    """chars/s with its range over the runs where they differ: `1234.5 (1201.0–1260.2)`."""
    low, high = row.get("chars_per_s_min"), row.get("chars_per_s_max")
    text = f"{row['chars_per_s']:.1f}"
    return text + (f" ({low:.1f}–{high:.1f})" if low is not None and high != low else "")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(value: Any) -> str:
        text = f"{value:.4g}" if isinstance(value, float) else str("" if value is None else value)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]


def _figures(name: str, row: dict[str, Any]) -> list[Any]:
    cells = [speed_cell(row), accuracy_cell(row), row["accuracy_cjk"], row["tokens_per_s"]]
    return [name, row["trial"], *cells]


def _markdown(summary: Summary, found: dict[str, dict[str, float]], note: str | None) -> str:
    counts, best, ref = summary.counts, summary.best, summary.reference
    out = [f"# Tuning report: study `{summary.study}`", "", f"Generated {now()}.", ""]
    out += [
        f"Trials: {counts['finished']} finished ({counts['complete']} complete, "
        f"{counts['feasible']} meet the accuracy limit {summary.acc_threshold:.4f}, "
        f"{counts['failed']} failed), {counts['interrupted']} interrupted.",
        "",
        "## Best vs reference",
        "",
    ]
    header = ["", "trial", "chars/s (runs' range)", "accuracy [95 %]", "cjk", "tokens/s"]
    picked = [("reference", ref), ("best", best)]
    out += _table(header, [_figures(name, row) for name, row in picked if row])
    out += ["", SPREAD_NOTE, "", gain_line(summary.improvement()), ""]
    if best:
        out += ["Best settings (`best.env` beside `best_params.json`):", "", "```"]
        out += [changes(best["env"]), "```", ""]
    else:
        out += ["No trial meets the accuracy limit yet.", ""]
    out += ["## Plots", ""] + [f"![{name}]({name})" for name in PLOTS] + [""]
    out += ["## Parameter importance", ""]
    for target, values in found.items():
        shown = ", ".join(f"{k} {v:.2f}" for k, v in list(values.items())[:8])
        out.append(f"- {target}: {shown}")
    if found:
        out += [
            "",
            "(PED-ANOVA over the trials that chose their own settings; with few trials, "
            "a hint, not a ranking.)",
        ]
    out += [note or "", "", f"## Top {TOP_N} trials meeting the accuracy limit", ""]
    feasible = [r for r in summary.rows if r["feasible"] and r["duplicate_of"] is None]
    top = sorted(feasible, key=lambda r: -r["chars_per_s"])
    rows = [
        [r["trial"], speed_cell(r), accuracy_cell(r), r["accuracy_cjk"], changes(r["env"])]
        for r in top[:TOP_N]
    ]
    out += _table(["trial", "chars/s", "accuracy [95 %]", "cjk", "settings"], rows)
    failed = [r for r in summary.rows if r["state"] == "FAIL"]
    out += ["", "## Failed and interrupted trials", ""]
    rows = [
        [
            r["trial"],
            r["kind"],
            (r["error"] or "").splitlines()[0][:160] if r["error"] else "",
            r["log"],
        ]
        for r in failed
    ]
    out += _table(["trial", "why", "error", "log"], rows) if rows else ["None."]
    return "\n".join(out) + "\n"
