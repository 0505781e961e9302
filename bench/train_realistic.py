"""A model that answers like a fine-tuned one, for timing: the Qwen2.5-0.5B architecture with the
real Qwen tokenizer, trained from scratch on data.jsonl for a fixed number of seconds.

    python bench/train_realistic.py --config-dir /tmp/q05 --out /tmp/real05 --seconds 240

It learns each question's answer as the server prompts for it (same system prompt, same
template), so on those questions it answers at their reference lengths and stops at
<|im_end|>: the shape of a real grading run, which dummy weights (every answer runs to its
budget) do not have. The seed fixes the data order and the initial weights. Writes a Hugging
Face directory (bf16) and `train_summary.json` (steps, epochs, loss, seconds, device).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # qaserve, run as a script
from qaserve.answering.prompts import PromptBuilder
from qaserve.modeltools.demo import collate, example_ids
from qaserve.questions import load_questions
from qaserve.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def examples(tokenizer: Any, data: Path, max_len: int) -> list[tuple[list[int], list[int]]]:
    """(ids, labels) of every pair, rendered as the server renders its prompts."""
    settings = load_settings()
    builder = PromptBuilder(tokenizer, settings.chat_template)
    rows = [example_ids(builder, settings.system_prompt, qa.question, qa.answer)
            for qa in load_questions(data)]  # fmt: skip
    return [(ids[:max_len], labels[:max_len]) for ids, labels in rows]


def batches(rows: list, size: int, rng: random.Random) -> list[list[int]]:
    """One epoch: indices in batches of similar length (less padding), batches shuffled."""
    order = list(range(len(rows)))
    rng.shuffle(order)
    order.sort(key=lambda i: len(rows[i][0]))
    chunks = [order[i : i + size] for i in range(0, len(order), size)]
    rng.shuffle(chunks)
    return chunks


def rate(fraction: float, peak: float, warmup: float = 0.05) -> float:
    """Linear warm-up over the first 5 % of the time, then cosine down to a tenth."""
    if fraction < warmup:
        return peak * max(fraction, 0.002) / warmup
    progress = min(1.0, (fraction - warmup) / (1 - warmup))
    return peak * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


def train(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.config_dir)
    rows = examples(tokenizer, args.data, args.max_len)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = AutoConfig.from_pretrained(args.config_dir)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).to(device)
    fused = device.type == "cuda"
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.0, fused=fused
    )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    start, step, epoch, losses = time.monotonic(), 0, 0, []
    while time.monotonic() - start < args.seconds:
        for chunk in batches(rows, args.batch, rng):
            fraction = (time.monotonic() - start) / args.seconds
            if fraction >= 1:
                break
            for group in optimizer.param_groups:
                group["lr"] = rate(fraction, args.lr)
            ids, mask, target = collate(
                [rows[i][0] for i in chunk], [rows[i][1] for i in chunk], pad, device
            )
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fused):
                loss = model(input_ids=ids, attention_mask=mask, labels=target).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            step += 1
            if step % 25 == 0:
                losses.append(float(loss))
                took = time.monotonic() - start
                print(f"step {step} epoch {epoch} loss {losses[-1]:.4f} "
                      f"lr {group['lr']:.2e} {took:.0f} s", flush=True)  # fmt: skip
        epoch += 1
    seconds = time.monotonic() - start
    save(model, args.config_dir, args.out)
    summary = {
        "what": "Qwen2.5-0.5B architecture trained from scratch on data.jsonl (bench workload)",
        "pairs": len(rows),
        "steps": step,
        "epochs": epoch,
        "batch": args.batch,
        "peak_lr": args.lr,
        "seed": args.seed,
        "last_losses": losses[-4:],
        "train_seconds": round(seconds, 1),
        "device": torch.cuda.get_device_name() if fused else "cpu",
        "torch": torch.__version__,
    }
    (args.out / "train_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def save(model: Any, config_dir: Path, out: Path) -> None:
    import torch

    model.to("cpu", dtype=torch.bfloat16).save_pretrained(out)
    for path in config_dir.iterdir():  # tokenizer files and generation_config, as given
        if path.is_file() and path.name != "config.json":
            shutil.copy2(path, out / path.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=ROOT / "data.jsonl")
    parser.add_argument("--seconds", type=float, default=240)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=6e-4)
    parser.add_argument("--max-len", type=int, default=768)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(train(args)))


if __name__ == "__main__":
    main()
