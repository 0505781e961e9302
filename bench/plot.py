"""Plot one device run of bench/results.jsonl (variants are only comparable within a run):
median answer tokens/s per variant, one panel per batch size, and the run's step-time curve.

    python bench/plot.py                 # the latest run that measured a step curve
    python bench/plot.py --run 62476f6e  # a run id (prefix) from results.jsonl

Writes bench/results.png.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def pick_run(rows: list[dict[str, Any]], prefix: str | None) -> str:
    runs = [r.get("run", "") for r in rows]
    if prefix:
        return next(run for run in reversed(runs) if run.startswith(prefix))
    with_steps = [r["run"] for r in rows if r["bench"] == "steps"]
    return with_steps[-1] if with_steps else runs[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="run id or its prefix")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (HERE / "results.jsonl").read_text().splitlines() if line]
    run = pick_run(rows, args.run)
    rows = [r for r in rows if r.get("run") == run]
    sized = [r for r in rows if "size" in r]
    steps = [r for r in rows if r["bench"] == "steps"]
    sizes = sorted({r["size"] for r in sized})
    panels = len(sizes) + bool(steps)
    fig, axes = plt.subplots(panels, 1, figsize=(10, 3.4 * panels), squeeze=False)
    first = rows[0]
    where = f"{first['gpu'].split(',')[0]}, vLLM {first['versions'].get('vllm', '?')}"
    for ax, size in zip(axes[:, 0], sizes, strict=False):
        bars = [r for r in sized if r["size"] == size]
        for x, r in enumerate(bars):
            value = r["median_tokens_per_s"] / 1000
            ax.bar(x, value, color="tab:blue" if r["bench"] == "server" else "tab:gray")
            ax.text(x, value, f"{value:.1f}k", ha="center", va="bottom", fontsize=7)
        names = [f"{r['bench']}:{r['label']}" for r in bars]
        ax.set_xticks(range(len(bars)), names, fontsize=6, rotation=25, ha="right")
        ax.set_ylabel("answer tokens/s (k)")
        ax.set_title(
            f"{size} questions per batch, run {run[:8]} ({where}; dummy weights rows "
            "run every answer to its budget)",
            fontsize=9,
        )
    if steps:
        ax = axes[-1, 0]
        curve = steps[-1]["steps"]
        ax.plot([p["batch"] for p in curve], [p["ms_per_step"] for p in curve], marker="o")
        ax.set_xlabel("sequences decoded per step (offline, our settings)")
        ax.set_ylabel("ms per decode step")
        ax.set_ylim(bottom=0)
        ax.set_title(
            "decode step time against batch: the batch-1 step is the engine's fixed cost",
            fontsize=9,
        )
    fig.tight_layout()
    fig.savefig(HERE / "results.png", dpi=110)
    print(HERE / "results.png")


if __name__ == "__main__":
    main()
