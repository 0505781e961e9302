"""Time our server end to end as the grader does: start serve.py, wait for `GET /`,
POST one batch per size, speed = answer characters / POST wall time.

    python bench/bench_server.py --questions .bench/questions.json --sizes 358,292,2048 \
        --repeat 3 --model-dir /tmp/q05 --env 'ENGINE_EXTRA_ARGS={"load_format":"dummy"}'

Prints a table and appends one JSON line per size to bench/results.jsonl (or --results).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # qaserve, run as a script
sys.path.insert(0, str(Path(__file__).resolve().parent))
from procs import by_role, cpu_seconds, finish_sampling, start_sampling
from record import append, environment, rates, summary

from qaserve.server.process import ServerProcess, start_server


def counter(metrics_text: str, name: str) -> float:
    match = re.search(rf"^{name} ([0-9.e+]+)$", metrics_text, re.M)
    return float(match.group(1)) if match else 0.0


def time_batch(url: str, questions: list[str], server: ServerProcess | None = None) -> dict:
    """One POST; with `server`, also the CPU seconds each of its processes spent meanwhile."""
    before = httpx.get(url + "/metrics").text
    pids = server.members() if server else []
    cpu_before = cpu_seconds(pids)
    start = time.perf_counter()
    reply = httpx.post(url + "/predict", json={"prompt": questions}, timeout=900)
    seconds = time.perf_counter() - start
    cpu = by_role(cpu_before, cpu_seconds(pids), server.proc.pid) if server else None
    reply.raise_for_status()
    answers = reply.json()["response"]
    assert len(answers) == len(questions), "answer count differs"
    after = httpx.get(url + "/metrics").text
    tokens = counter(after, "qa_answer_tokens_total") - counter(before, "qa_answer_tokens_total")
    chars = sum(len(a) for a in answers)
    empty = sum(1 for a in answers if not a)
    row = {**rates(seconds, chars, tokens), "empty": empty, "answers": answers}
    return {**row, "cpu_s": cpu} if cpu is not None else row


def gpu_memory_mib() -> int | None:
    """GPU memory in use now (all processes), from nvidia-smi; None without a GPU."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout
        return sum(int(x) for x in out.split())
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def batch_of(questions: list[str], size: int) -> list[str]:
    return [questions[i % len(questions)] for i in range(size)]


def main() -> None:
    parser = argparse.ArgumentParser(description="grader-style timing of serve.py")
    parser.add_argument(
        "--questions",
        type=Path,
        action="append",
        required=True,
        help="JSON list of questions; again for a further list timed on the same server",
    )
    parser.add_argument("--sizes", default="358,292")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    parser.add_argument("--label", default="server")
    parser.add_argument("--commit", default=None)
    parser.add_argument("--results", type=Path, default=None)
    parser.add_argument("--log", type=Path, default=Path("server.log"))
    parser.add_argument("--ready-timeout", type=float, default=600)
    parser.add_argument("--save-answers", type=Path, default=None, help="dir: first run's answers")
    parser.add_argument("--workload", default="dummy", help="recorded: dummy or realistic")
    parser.add_argument("--cpu", action="store_true", help="CPU seconds per batch per process")
    parser.add_argument(
        "--pyspy-seconds", type=int, default=0, help="then sample every process with py-spy"
    )
    parser.add_argument("--pyspy-dir", type=Path, default=Path(os.environ.get("OUT", "/tmp")))
    args = parser.parse_args()
    env = {"MODEL_DIR": args.model_dir, **dict(kv.split("=", 1) for kv in args.env)}
    server = start_server({**os.environ, **env}, args.log)
    try:
        ready_s = server.wait_ready(args.ready_timeout)
        run(args, env, server, ready_s)
        if args.pyspy_seconds:
            sample(args, json.loads(args.questions[0].read_text(encoding="utf-8")), server)
    finally:
        server.stop(grace_s=60)


def sample(args: argparse.Namespace, questions: list[str], server: ServerProcess) -> None:
    """py-spy on the API process and each engine core while batches of the first size run."""
    size = int(args.sizes.split(",")[0])
    started = start_sampling(server.members(), server.proc.pid, args.pyspy_seconds, args.pyspy_dir)
    end, batches = time.monotonic() + args.pyspy_seconds, 0
    while time.monotonic() < end:
        time_batch(server.url, batch_of(questions, size))
        batches += 1
    print(f"py-spy: {batches} batches of {size} sampled")
    finish_sampling(started)


def run(
    args: argparse.Namespace, env: dict[str, str], server: ServerProcess, ready_s: float
) -> None:
    """Time each questions file and batch size `args.repeat` times; print a row per run, append
    one line per file and size."""
    info = httpx.get(server.url + "/info").json()
    print(f"ready after {ready_s:.1f} s ({info.get('startup_s')}); engine {info['engine']}")
    print(f"{'label':<14}{'size':>6}{'run':>4}{'s':>8}{'chars/s':>10}{'tok/s':>10}{'empty':>6}")
    for path in args.questions:
        questions = json.loads(path.read_text(encoding="utf-8"))
        for size in [int(s) for s in args.sizes.split(",")]:
            runs, saved = timed_runs(args, server, path, questions, size)
            append(
                {
                    **environment(args.commit),
                    "bench": "server",
                    "label": args.label,
                    "workload": args.workload,
                    "questions": path.name,
                    "answers_file": saved,
                    "command": " ".join(sys.argv),
                    "env": env,
                    "engine": info["engine"],
                    "engine_args": info["engine_args"],
                    "ready_s": round(ready_s, 1),
                    "startup_s": info.get("startup_s"),  # the server's own split of it
                    "gpu_memory_used_mib": gpu_memory_mib(),
                    "size": size,
                    **summary(runs),
                },
                args.results,
            )


def timed_runs(
    args: argparse.Namespace, server: ServerProcess, path: Path, questions: list[str], size: int
) -> tuple[list[dict[str, Any]], str | None]:
    """The repeats of one batch; the first one's answers saved (file name returned)."""
    runs, saved = [], None
    for run in range(args.repeat):
        r = time_batch(server.url, batch_of(questions, size), server if args.cpu else None)
        answers = r.pop("answers")
        if run == 0 and args.save_answers:
            args.save_answers.mkdir(parents=True, exist_ok=True)
            first = path == args.questions[0]
            saved = (
                f"answers-{args.label}-{size}.json"
                if first
                else (f"answers-{args.label}-{path.stem}-{size}.json")
            )
            (args.save_answers / saved).write_text(json.dumps(answers, ensure_ascii=False))
        runs.append(r)
        print(
            f"{args.label:<14}{size:>6}{run:>4}{r['seconds']:>8.2f}"
            f"{r['chars_per_s']:>10.0f}{r['tokens_per_s']:>10.0f}{r['empty']:>6}"
            + (f"  cpu s {r['cpu_s']}" if "cpu_s" in r else "")
        )
    return runs, saved


if __name__ == "__main__":
    main()
