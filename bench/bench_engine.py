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
from steps import kernel_profile, step_curve

from qaserve.answering.prompts import PromptBuilder
from qaserve.answering.service import QAService
from qaserve.engines import stop_token_ids
from qaserve.engines.vllm import engine_kwargs, sampling_params
from qaserve.modeltools.files import resolve_model_dir
from qaserve.server.metrics import Metrics
from qaserve.settings import load_settings


def time_generate(llm: Any, service: QAService, stops: list[int], questions: list[str]) -> dict:
    """One offline batch, timed from planning to the last output; its answers under "answers"."""
    start = time.perf_counter()
    prompts, params = service.plan(questions, {})
    sampling = [sampling_params(p, stops, final_only=True) for p in params]
    outputs = llm.generate(
        [{"prompt_token_ids": p.token_ids} for p in prompts], sampling, use_tqdm=False
    )
    seconds = time.perf_counter() - start
    chars = sum(len(o.outputs[0].text) for o in outputs)
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    return {**rates(seconds, chars, tokens), "answers": [o.outputs[0].text for o in outputs]}


def main() -> None:
    parser = argparse.ArgumentParser(description="offline vLLM ceiling on our prompts")
    parser.add_argument("--questions", type=Path, required=True)
    parser.add_argument("--sizes", default="358,292", help="batch sizes to time; '' for none")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--label", default="LLM.generate")
    parser.add_argument("--workload", default="dummy", help="recorded: dummy or realistic")
    parser.add_argument("--save-answers", type=Path, default=None, help="dir: first run's answers")
    parser.add_argument("--commit", default=None)
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument(
        "--turn",
        type=Path,
        default=None,
        help="engines started side by side measure one at a time: after warm-up write "
        "TURN/ready-LABEL, wait for TURN/go-LABEL, write TURN/done-LABEL when finished",
    )
    parser.add_argument(
        "--vllm-defaults",
        action="store_true",
        help="vLLM's own engine defaults (only ENGINE_EXTRA_ARGS on top), not our settings: "
        "the baseline our server is compared with",
    )
    parser.add_argument("--step-curve", default="", help="batch sizes, e.g. 1,32,358")
    parser.add_argument("--step-tokens", type=int, default=128)
    parser.add_argument("--profile-dir", type=Path, default=None, help="profile one 358 batch")
    args = parser.parse_args()
    from transformers import AutoTokenizer
    from vllm import LLM, EngineArgs

    settings = load_settings()
    model_dir = resolve_model_dir(settings)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    known = {f.name for f in dataclasses.fields(EngineArgs)}
    kwargs = engine_kwargs(settings, model_dir, known)
    if args.vllm_defaults:
        kwargs = {"model": kwargs["model"], "tokenizer": kwargs["tokenizer"]}
        kwargs.update(settings.engine_extra_args)
    if args.profile_dir:
        kwargs["profiler_config"] = {
            "profiler": "torch",
            "torch_profiler_dir": str(args.profile_dir),
            "ignore_frontend": True,
            "torch_profiler_with_stack": False,
        }
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
    for size in [int(s) for s in args.sizes.split(",") if s]:
        runs = []
        for run in range(args.repeat):
            r = time_generate(llm, service, stops, batch_of(questions, size))
            answers = r.pop("answers")
            if run == 0 and args.save_answers:
                args.save_answers.mkdir(parents=True, exist_ok=True)
                name = f"answers-{args.label}-{size}.json"
                (args.save_answers / name).write_text(json.dumps(answers, ensure_ascii=False))
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
                "workload": args.workload,
                "questions": args.questions.name,
                "command": " ".join(sys.argv),
                "engine_args": {k: v for k, v in kwargs.items() if k not in ("model", "tokenizer")},
                "init_s": round(init_s, 1),
                "size": size,
                **summary(runs),
            },
            args.results,
        )
    if args.step_curve or args.profile_dir:
        where_time_goes(args, llm, service, questions, kwargs)
    if args.turn:
        (args.turn / f"done-{args.label}").touch()


def where_time_goes(
    args: argparse.Namespace, llm: Any, service: QAService, questions: list[str], kwargs: dict
) -> None:
    """The step curve and the kernel profile (bench/steps.py) on our prompts."""
    prompts = [p.token_ids for p in service.plan(batch_of(questions, 358), {})[0]]
    record = {
        **environment(args.commit),
        "label": args.label,
        "command": " ".join(sys.argv),
        "engine_args": {k: v for k, v in kwargs.items() if k not in ("model", "tokenizer")},
    }
    if args.step_curve:
        sizes = [int(s) for s in args.step_curve.split(",")]
        for detokenize in (True, False):
            rows = step_curve(llm, prompts, sizes, args.step_tokens, detokenize)
            append({**record, "bench": "steps", "steps": rows}, args.results)
    if args.profile_dir:
        try:
            row = kernel_profile(llm, prompts, 358, args.step_tokens, args.profile_dir)
        except Exception as exc:  # the figures above are kept either way
            print(f"profile failed: {exc!r}")
            return
        append({**record, "bench": "profile", **row}, args.results)


def wait_for_turn(turn: Path, label: str) -> None:
    turn.mkdir(parents=True, exist_ok=True)
    (turn / f"ready-{label}").touch()
    while not (turn / f"go-{label}").exists():
        time.sleep(0.1)


if __name__ == "__main__":
    main()
