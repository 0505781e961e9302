"""The benchmark workloads, written to .bench/ (ignored; carried to the device):

- `questions.json`: the 192 questions of the sample docx files (../shared/data, never
  committed), the dummy-weight workload, cycled to 358 / 2,048 items by the benches;
- `real358.json` + `real358_refs.json`: 358 distinct questions of data.jsonl (seeded draw) and
  their reference answers, the realistic workload (bench/train_realistic.py memorises them, so
  its answers run to reference lengths and end at <|im_end|>);
- `real358_dup.json` + refs: 179 of those questions twice each, shuffled: a batch with repeats,
  for the lever that answers identical questions once (reported apart from the distinct one).

    python bench/workloads.py
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # qaserve, run as a script
from qaserve.questions import load_questions

ROOT = Path(__file__).resolve().parents[1]

OUT = ROOT / ".bench"
DOCX = ROOT.parent / "shared" / "data"
SIZE, SEED = 358, 0


def write(name: str, items: list[str]) -> None:
    (OUT / name).write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    print(f"{OUT / name}: {len(items)} items")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    if DOCX.is_dir():
        docx = [qa.question for path in sorted(DOCX.glob("*.docx")) for qa in load_questions(path)]
        write("questions.json", docx)
    pairs = load_questions(ROOT / "data.jsonl")
    rng = random.Random(SEED)
    chosen = rng.sample(pairs, SIZE)
    write("real358.json", [qa.question for qa in chosen])
    write("real358_refs.json", [qa.answer for qa in chosen])
    half = chosen[: SIZE // 2] * 2
    rng.shuffle(half)
    write("real358_dup.json", [qa.question for qa in half])
    write("real358_dup_refs.json", [qa.answer for qa in half])


if __name__ == "__main__":
    main()
