"""Compare two evaluation runs question by question: what got better, what got worse, and
whether the change in accuracy is more than noise.

python -m qaserve.evaluation.compare runs/before.jsonl runs/after.jsonl

The verdict is a paired bootstrap over the questions both runs asked: the 95 % interval of the
mean per-question difference (B − A). It is "within noise" when that interval contains 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qaserve.evaluation.scoring import bootstrap_interval, cjk_rouge_l, grader_rouge_l
from qaserve.questions import jsonl_rows

if TYPE_CHECKING:
    from rich.table import Table

TOLERANCE = 1e-9
METRICS = ("grader", "cjk")
WITHIN_NOISE = "within noise"
NO_PAIRS = "no question in both runs"


def load_records(path: Path) -> list[dict]:
    """Per-question records from a JSONL file (blank lines skipped, non-object rows ignored)."""
    rows = jsonl_rows(Path(path).read_text(encoding="utf-8"), str(path))
    return [row for _, row in rows if isinstance(row, dict)]


def _scores(record: dict[str, Any]) -> tuple[float, float]:
    """(grader, cjk); scored from ref/pred_raw when a run (an older tool's) lacks the field."""
    ref, pred = str(record.get("ref") or ""), str(record.get("pred_raw") or "")
    grader, cjk = record.get("rougeL_f1_raw"), record.get("rougeL_f1_cjk")
    return (
        float(grader) if isinstance(grader, (int, float)) else grader_rouge_l(ref, pred),
        float(cjk) if isinstance(cjk, (int, float)) else cjk_rouge_l(ref, pred),
    )


def _keyed(records: list[dict]) -> dict[tuple[str, int], dict]:
    # the question text is the key; a repeated question is told apart by its occurrence,
    # a record without a question by its index
    seen: dict[str, int] = {}
    out = {}
    for pos, record in enumerate(records):
        question = str(record.get("question") or "").strip()
        text = question or f"#{record.get('index', pos)}"
        nth = seen.get(text, 0)
        seen[text] = nth + 1
        out[(text, nth)] = record
    return out


def _means(scores: list[tuple[float, float]]) -> dict[str, float]:
    n = len(scores)
    return {
        "grader": sum(g for g, _ in scores) / n if n else 0.0,
        "cjk": sum(c for _, c in scores) / n if n else 0.0,
    }


def _intervals(scores: list[tuple[float, float]]) -> dict[str, tuple[float, float]]:
    return {m: bootstrap_interval([s[i] for s in scores]) for i, m in enumerate(METRICS)}


def verdict(interval: tuple[float, float]) -> str:
    """What the 95 % interval of B − A says: within noise when it contains 0."""
    low, high = interval
    if low <= 0 <= high:
        return WITHIN_NOISE
    return "B better" if low > 0 else "A better"


def compare_runs(a: list[dict], b: list[dict]) -> dict:
    """Match records by question text (then index) and report means, deltas and movers.

    `improved`/`worsened`/`unchanged` are judged on the grader score with tolerance 1e-9; each
    item holds both runs' scores and answers. `only_a`/`only_b` list unmatched questions.
    `interval_a`/`interval_b`: each run's 95 % accuracy intervals; `delta_interval`: the paired
    one of the matched questions' mean B − A, and `verdict` what it says, per metric.
    """
    ka, kb = _keyed(a), _keyed(b)
    sa = {k: _scores(r) for k, r in ka.items()}
    sb = {k: _scores(r) for k, r in kb.items()}
    items: list[dict[str, Any]] = []
    for key in (k for k in ka if k in kb):
        ra, rb = ka[key], kb[key]
        (ga, ca), (gb, cb) = sa[key], sb[key]
        items.append(
            {
                "question": ra.get("question") or key[0],
                "index_a": ra.get("index"),
                "index_b": rb.get("index"),
                "grader_a": ga,
                "grader_b": gb,
                "delta_grader": gb - ga,
                "cjk_a": ca,
                "cjk_b": cb,
                "delta_cjk": cb - ca,
                "pred_a": ra.get("pred_raw"),
                "pred_b": rb.get("pred_raw"),
            }
        )
    improved = sorted(
        (i for i in items if i["delta_grader"] > TOLERANCE), key=lambda i: -i["delta_grader"]
    )
    worsened = sorted(
        (i for i in items if i["delta_grader"] < -TOLERANCE), key=lambda i: i["delta_grader"]
    )
    deltas = _intervals([(i["delta_grader"], i["delta_cjk"]) for i in items])
    return {
        "n_a": len(a),
        "n_b": len(b),
        "n_matched": len(items),
        "mean_a": _means(list(sa.values())),
        "mean_b": _means(list(sb.values())),
        "interval_a": _intervals(list(sa.values())),
        "interval_b": _intervals(list(sb.values())),
        "delta_interval": deltas,
        "verdict": {m: verdict(deltas[m]) if items else NO_PAIRS for m in METRICS},
        "matched_mean_a": _means([(i["grader_a"], i["cjk_a"]) for i in items]),
        "matched_mean_b": _means([(i["grader_b"], i["cjk_b"]) for i in items]),
        "items": items,
        "improved": improved,
        "worsened": worsened,
        "unchanged": [i for i in items if abs(i["delta_grader"]) <= TOLERANCE],
        "only_a": [k[0] for k in ka if k not in kb],
        "only_b": [k[0] for k in kb if k not in ka],
    }


def compare_table(result: dict) -> Table:
    """Run A vs run B: means of both metrics, movers, unmatched questions."""
    from rich.table import Table

    table = Table(title="run A vs run B")
    for name, justify in (("", "left"), ("A", "right"), ("B", "right"), ("B − A", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_row("questions", str(result["n_a"]), str(result["n_b"]), str(result["n_matched"]))
    for metric in METRICS:
        va, vb = result["mean_a"][metric], result["mean_b"][metric]
        cells = [_with(va, result["interval_a"][metric]), _with(vb, result["interval_b"][metric])]
        table.add_row(f"{metric} mean (all, 95 %)", *cells, f"{vb - va:+.4f}")
    for metric in METRICS:
        va, vb = result["matched_mean_a"][metric], result["matched_mean_b"][metric]
        low, high = result["delta_interval"][metric]
        delta = f"{vb - va:+.4f} [{low:+.4f}, {high:+.4f}]"
        table.add_row(f"{metric} mean (matched, paired 95 %)", f"{va:.4f}", f"{vb:.4f}", delta)
    for metric in METRICS:
        table.add_row(f"{metric} verdict", "", "", result["verdict"][metric])
    table.add_row(
        "improved / worsened / same",
        "",
        "",
        f"{len(result['improved'])} / {len(result['worsened'])} / {len(result['unchanged'])}",
    )
    table.add_row("only in this run", str(len(result["only_a"])), str(len(result["only_b"])), "")
    return table


def _with(value: float, interval: tuple[float, float]) -> str:
    return f"{value:.4f} [{interval[0]:.4f}, {interval[1]:.4f}]"


def changes_table(result: dict, top: int = 10) -> Table:
    """The `top` biggest gains and losses by grader score, one row per question."""
    from rich.table import Table

    table = Table(title=f"biggest changes (top {top} each way)")
    for name in ("question", "grader A", "grader B", "Δ grader", "Δ cjk"):
        table.add_column(name, overflow="fold")
    for item in result["improved"][:top] + result["worsened"][:top]:
        question = str(item["question"])
        table.add_row(
            question if len(question) <= 60 else question[:59] + "…",
            f"{item['grader_a']:.4f}",
            f"{item['grader_b']:.4f}",
            f"{item['delta_grader']:+.4f}",
            f"{item['delta_cjk']:+.4f}",
        )
    return table


def main(argv: list[str] | None = None) -> None:
    from rich.console import Console

    parser = argparse.ArgumentParser(description="Compare two per-question JSONL runs.")
    parser.add_argument("a", type=Path, help="baseline run (JSONL)")
    parser.add_argument("b", type=Path, help="new run (JSONL)")
    parser.add_argument("--top", type=int, default=10, help="changes to list each way")
    args = parser.parse_args(argv)
    result = compare_runs(load_records(args.a), load_records(args.b))
    console = Console()
    console.print(compare_table(result))
    console.print(changes_table(result, args.top))


if __name__ == "__main__":
    main()
