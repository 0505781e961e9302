"""One device run's rows, finished here: each row's ratio to vLLM's offline defaults measured in
the same run on the same workload and size, the spread of its repeats, and, where answers were
saved and the questions have references, the grader's accuracy and the answers' lengths.

    python bench/ratios.py /work/.device/.../out/*.jsonl --answers /work/.device/.../out \
        --refs .bench/real358.json=.bench/real358_refs.json --append bench/results.jsonl

Ratio = the baseline's median seconds per batch / the row's (same prompts, same size): above 1
is faster than `LLM.generate` with vLLM's own engine defaults.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BASELINE = "vllm-defaults"


def questions_file(row: dict[str, Any]) -> str:
    if row.get("questions"):
        return str(row["questions"])
    match = re.search(r"--questions (\S+)", row.get("command", ""))
    return Path(match.group(1)).name if match else ""


def key(row: dict[str, Any]) -> tuple:
    return row.get("workload", "dummy"), questions_file(row), row["size"]


def finish(rows: list[dict], answers: Path | None, refs: dict[str, list[str]]) -> list[dict]:
    timed = [r for r in rows if r.get("bench") in ("server", "engine") and r.get("runs")]
    base = {key(r): r["median_seconds"] for r in timed if r["label"].endswith(BASELINE)}
    for row in timed:
        seconds = [run["seconds"] for run in row["runs"]]
        row["slowest_over_median"] = round(max(seconds) / statistics.median(seconds), 3)
        if key(row) in base:
            row["ratio_vs_vllm_defaults"] = round(base[key(row)] / row["median_seconds"], 3)
        name = row.get("answers_file") or f"answers-{row['label']}-{row['size']}.json"
        saved = answers / name if answers else None
        reference = refs.get(questions_file(row))
        if saved and saved.exists() and reference:
            row.update(quality(json.loads(saved.read_text(encoding="utf-8")), reference))
    return timed


def quality(answers: list[str], references: list[str]) -> dict[str, Any]:
    """Mean grader RougeL-F1 and the answers' token lengths (Qwen tokenizer)."""
    from transformers import AutoTokenizer

    from qaserve.evaluation.scoring import grader_rouge_l
    from qaserve.modeltools.smoke import qwen_tokenizer_dir

    refs = [references[i % len(references)] for i in range(len(answers))]
    tokenizer = AutoTokenizer.from_pretrained(qwen_tokenizer_dir())
    lengths = sorted(len(tokenizer(a)["input_ids"]) for a in answers)
    return {
        "accuracy_rouge_l": round(statistics.mean(map(grader_rouge_l, refs, answers)), 4),
        "answer_tokens": {
            "median": statistics.median(lengths),
            "p90": lengths[int(0.9 * (len(lengths) - 1))],
            "max": lengths[-1],
            "empty": sum(1 for a in answers if not a.strip()),
        },
    }


def table(rows: list[dict]) -> None:
    print("| workload | questions | size | label | median s | slowest/median | ratio | accuracy |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r.get('workload', 'dummy')} | {questions_file(r)} | {r['size']} | {r['label']} | "
            f"{r['median_seconds']:.2f} | {r['slowest_over_median']:.2f} | "
            f"{r.get('ratio_vs_vllm_defaults', '')} | {r.get('accuracy_rouge_l', '')} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--answers", type=Path, default=None)
    parser.add_argument("--refs", action="append", default=[], help="QUESTIONS=REFS (JSON lists)")
    parser.add_argument("--append", type=Path, default=None, help="add the rows to this file")
    args = parser.parse_args()
    refs = {}
    for pair in args.refs:
        questions, references = pair.split("=", 1)
        refs[Path(questions).name] = json.loads(Path(references).read_text(encoding="utf-8"))
    rows = [json.loads(line) for f in args.files for line in f.read_text().splitlines() if line]
    done = finish(rows, args.answers, refs)
    table(done)
    if args.append:
        with args.append.open("a", encoding="utf-8") as out:
            for row in done:
                out.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
