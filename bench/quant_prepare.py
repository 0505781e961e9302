"""A randomly initialised model from a config directory (config.json + tokenizer files, e.g.
/tmp/q05 from bench/device_model.sh) saved with real weights, plus a calibration chat JSONL made
from the benchmark questions: the inputs of bench/device_quant.sh.

    python bench/quant_prepare.py --config-dir /tmp/q05 --out /tmp/q05-bf16 \
        --questions .bench/questions.json --calibration /tmp/q05-calib.jsonl

The answers in the calibration file are synthetic (the weights are random: calibration only
shapes AWQ's scales, and throughput does not depend on what the model says).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

ANSWER = "{q} 简要回答：the kernel uses threads, blocks, shared memory and __syncthreads()。"


def build(config_dir: Path, out: Path, dtype: str, seed: int) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(config_dir)
    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):  # initialising 0.5B parameters on the GPU takes a second
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    model.save_pretrained(out)
    for path in config_dir.iterdir():  # tokenizer files and generation_config, as given
        if path.is_file() and path.name != "config.json":
            shutil.copy2(path, out / path.name)


def calibration(questions: Path, out: Path) -> int:
    items = json.loads(questions.read_text(encoding="utf-8"))
    texts = [q if isinstance(q, str) else q.get("question") or q.get("prompt") for q in items]
    with out.open("w", encoding="utf-8") as handle:
        for q in texts:
            messages = [{"role": "user", "content": q},
                        {"role": "assistant", "content": ANSWER.format(q=q)}]  # fmt: skip
            handle.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
    return len(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--calibration", type=Path, required=True)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.monotonic()
    if not (args.out / "config.json").is_file():
        build(args.config_dir, args.out, args.dtype, args.seed)
    rows = calibration(args.questions, args.calibration)
    print(f"{args.out}: random {args.dtype} weights; {args.calibration}: {rows} chat rows "
          f"({time.monotonic() - start:.1f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
