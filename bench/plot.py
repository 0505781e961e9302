"""Plot bench/results.jsonl: median answer tokens/s per variant, one panel per batch size,
one bar group per run (`run` field; rows written before it existed group by commit, and the
e47890b and 7c727ec groups each span two device calls: bench/README.md splits them).

    python bench/plot.py                      # writes bench/results.png
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (HERE / "results.jsonl").read_text().splitlines() if line]
    rows = [r for r in rows if r["gpu"] != "none"]
    sizes = sorted({r["size"] for r in rows})
    fig, axes = plt.subplots(len(sizes), 1, figsize=(10, 3.2 * len(sizes)), squeeze=False)
    for ax, size in zip(axes[:, 0], sizes, strict=True):
        runs: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for r in rows:
            if r["size"] == size:
                run = r.get("run") or r["commit"]  # older rows: one group per commit
                label = f"{r['bench']}:{r['label']}"
                runs[run].append((label, r["median_tokens_per_s"] / 1000))
        x = 0
        ticks, names = [], []
        for run, bars in runs.items():
            for label, value in bars:
                ax.bar(x, value)
                ax.text(x, value, f"{value:.1f}k", ha="center", va="bottom", fontsize=7)
                ticks.append(x)
                names.append(f"{label}\n{run}")
                x += 1
            x += 1  # gap between runs
        ax.set_xticks(ticks, names, fontsize=6, rotation=30, ha="right")
        ax.set_ylabel("answer tokens/s (k)")
        ax.set_title(f"{size} questions per batch (H200, dummy weights; compare within a run)")
    fig.tight_layout()
    fig.savefig(HERE / "results.png", dpi=110)
    print(HERE / "results.png")


if __name__ == "__main__":
    main()
