"""Where a decode step's time goes, on an offline `vllm.LLM`:

- the step curve: N prompts that each decode exactly T tokens (`ignore_eos`), so every
  sequence lives for T steps; wall time / T is the time of one decode step at batch N. At N=1
  the GPU has almost nothing to do, so that step is the engine's fixed per-step cost;
- the kernel profile: vLLM's torch profiler over one such batch; the share of the recorded
  span in which a CUDA kernel ran is the GPU's share of a step (the rest is CPU-side:
  scheduling, input preparation, sampling bookkeeping, output processing).
"""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from typing import Any


def step_curve(
    llm: Any, prompts: list[list[int]], sizes: list[int], tokens: int, detokenize: bool = True
) -> list[dict]:
    """Per batch size: the best of two runs' seconds per decode step (`detokenize=False`: token
    ids only, as the server's DECODE_AT_END asks of vLLM)."""
    from vllm import SamplingParams

    sampling = SamplingParams(
        temperature=0, max_tokens=tokens, min_tokens=tokens, ignore_eos=True, detokenize=detokenize
    )
    rows = []
    for n in sizes:
        batch = [{"prompt_token_ids": prompts[i % len(prompts)]} for i in range(n)]
        best = float("inf")
        for _ in range(2):
            start = time.perf_counter()
            outputs = llm.generate(batch, sampling, use_tqdm=False)
            best = min(best, time.perf_counter() - start)
        made = sum(len(o.outputs[0].token_ids) for o in outputs)
        assert made == n * tokens, f"expected {n * tokens} tokens, got {made}"
        rows.append(
            {"batch": n, "tokens": tokens, "seconds": best, "ms_per_step": 1000 * best / tokens,
             "detokenize": detokenize}
        )  # fmt: skip
        print(f"step curve  batch {n:>5}  {1000 * best / tokens:7.2f} ms/step  ({best:.2f} s)"
              f"  detokenize={detokenize}")  # fmt: skip
    return rows


def kernel_profile(
    llm: Any, prompts: list[list[int]], size: int, tokens: int, trace_dir: Path
) -> dict[str, Any]:
    """One batch of `size` prompts × `tokens` steps under vLLM's torch profiler. The GPU's busy
    share is the CUDA kernel time over the span from the first kernel to the last (whatever
    steps the profiler recorded); times the unprofiled step time, it is the kernels' ms/step."""
    from vllm import SamplingParams

    sampling = SamplingParams(temperature=0, max_tokens=tokens, min_tokens=tokens, ignore_eos=True)
    batch = [{"prompt_token_ids": prompts[i % len(prompts)]} for i in range(size)]
    llm.start_profile()
    llm.generate(batch, sampling, use_tqdm=False)
    llm.stop_profile()
    busy_us, span_us, kernels = kernel_busy(trace_dir)
    row = {
        "batch": size,
        "tokens": tokens,
        "kernels": kernels,
        "kernel_span_ms": span_us / 1000,
        "kernel_busy_ms": busy_us / 1000,
        "gpu_busy_share": busy_us / span_us if span_us else None,
    }
    print(
        f"profile     batch {size:>5}  {kernels} kernels, GPU busy "
        f"{busy_us / 1000:.1f} of {span_us / 1000:.1f} ms ({row['gpu_busy_share'] or 0:.0%})"
    )
    return row


def kernel_busy(trace_dir: Path, wait_s: float = 180) -> tuple[float, float, int]:
    """CUDA kernel time summed, the span from the first kernel's start to the last one's end
    (µs), and the kernel count, over the Chrome traces in trace_dir (the worker writes them
    after stop_profile returns: wait until they appear and stop growing)."""
    deadline = time.monotonic() + wait_s
    sizes: tuple[int, ...] = ()
    while time.monotonic() < deadline:
        files = sorted(trace_dir.rglob("*.json*"))
        now = tuple(f.stat().st_size for f in files)
        if files and now == sizes:
            break
        sizes = now
        time.sleep(3)
    busy, first, last, count = 0.0, float("inf"), 0.0, 0
    for path in sorted(trace_dir.rglob("*.json*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            trace = json.load(f)
        events = trace.get("traceEvents", []) if isinstance(trace, dict) else []
        for e in events:
            if e.get("cat") == "kernel" and "ts" in e:
                busy += e.get("dur", 0)
                first = min(first, e["ts"])
                last = max(last, e["ts"] + e.get("dur", 0))
                count += 1
    return busy, (last - first if count else 0.0), count
