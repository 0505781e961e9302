"""The engine's ceiling: offline `vllm.LLM.generate` on exactly the prompts and sampling
parameters our server sends (same settings, template, budgets), with detokenization.

    MODEL_DIR=/tmp/q05 ENGINE_EXTRA_ARGS='{"load_format":"dummy"}' \
        python bench/bench_engine.py --questions .bench/questions.json --sizes 358,292 --repeat 3

Prints a table and appends one JSON line per size to bench/results.jsonl (or --results).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench_server import batch_of
from record import append, environment, rates, summary

from qaserve.engines import stop_token_ids
from qaserve.engines.vllm_engine import engine_kwargs, sampling_params
from qaserve.metrics import Metrics
from qaserve.model_path import resolve_model_dir
from qaserve.prompts import PromptBuilder
from qaserve.service import QAService
from qaserve.settings import load_settings


def time_generate(llm: Any, service: QAService, stops: list[int], questions: list[str]) -> dict:
    start = time.perf_counter()
    prompts, params = service.plan(questions, {})
    sampling = [sampling_params(p, stops, final_only=True) for p in params]
    outputs = llm.generate(
        [{"prompt_token_ids": p.token_ids} for p in prompts], sampling, use_tqdm=False
    )
    seconds = time.perf_counter() - start
    chars = sum(len(o.outputs[0].text) for o in outputs)
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    return rates(seconds, chars, tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description="offline vLLM ceiling on our prompts")
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--sizes", default="358,292")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--label", default="LLM.generate")
    parser.add_argument("--commit", default=None)
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument(
        "--turn",
        type=Path,
        default=None,
        help="engines started side by side measure one at a time: after warm-up write "
        "TURN/ready-LABEL, wait for TURN/go-LABEL, write TURN/done-LABEL when finished",
    )
    args = parser.parse_args()
    from transformers import AutoTokenizer
    from vllm import LLM, EngineArgs

    settings = load_settings()
    model_dir = resolve_model_dir(settings)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    known = {f.name for f in dataclasses.fields(EngineArgs)}
    kwargs = engine_kwargs(settings, model_dir, known)
    start = time.monotonic()
    llm = LLM(**kwargs)
    init_s = time.monotonic() - start
    service = QAService(settings, None, PromptBuilder(tokenizer, settings.chat_template), Metrics())  # type: ignore[arg-type]
    stops = stop_token_ids(tokenizer)
    questions = json.loads(args.questions.read_text(encoding="utf-8"))
    time_generate(llm, service, stops, batch_of(questions, 16))  # warm-up, as the server does
    print(f"engine init {init_s:.1f} s")
    if args.turn:
        wait_for_turn(args.turn, args.label)
    for size in [int(s) for s in args.sizes.split(",")]:
        runs = []
        for run in range(args.repeat):
            r = time_generate(llm, service, stops, batch_of(questions, size))
            runs.append(r)
            print(
                f"{args.label:<14}{size:>6}{run:>4}{r['seconds']:>8.2f}"
                f"{r['chars_per_s']:>10.0f}{r['tokens_per_s']:>10.0f}"
            )
        append(
            {
                **environment(args.commit),
                "bench": "engine",
                "label": args.label,
                "command": " ".join(sys.argv),
                "engine_args": {k: v for k, v in kwargs.items() if k not in ("model", "tokenizer")},
                "init_s": round(init_s, 1),
                "size": size,
                **summary(runs),
            },
            args.results,
        )
    if args.turn:
        (args.turn / f"done-{args.label}").touch()


def wait_for_turn(turn: Path, label: str) -> None:
    turn.mkdir(parents=True, exist_ok=True)
    (turn / f"ready-{label}").touch()
    while not (turn / f"go-{label}").exists():
        time.sleep(0.1)


if __name__ == "__main__":
    main()
