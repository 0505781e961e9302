"""Where a server's CPU time goes, by process: CPU seconds per batch from /proc, and py-spy
samples (native frames included) of each process while batches run.

Used by bench_server.py (`--cpu`, `--pyspy-seconds`); summarise a py-spy file alone with
    python bench/procs.py /tmp/out/pyspy-api.txt
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def role(pid: int, leader: int) -> str:
    """api (the uvicorn process), engine (a vLLM engine core), or the process's own name."""
    if pid == leader:
        return "api"
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "gone"
    return "engine" if "EngineCore" in name or "EngineCor" in name else name


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each live process so far."""
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / TICKS
    return found


def by_role(before: dict[int, float], after: dict[int, float], leader: int) -> dict[str, float]:
    """CPU seconds spent between two readings, summed per role (engines numbered)."""
    spent: dict[str, float] = {}
    engines = 0
    for pid in sorted(after):
        name = role(pid, leader)
        if name == "engine":
            name, engines = f"engine-{engines}", engines + 1
        spent[name] = round(spent.get(name, 0.0) + after[pid] - before.get(pid, 0.0), 3)
    return {k: v for k, v in spent.items() if v > 0.005}


def py_spy() -> str | None:
    found = shutil.which("py-spy")
    staged = Path("/tmp/site/bin/py-spy")
    return found or (str(staged) if staged.exists() else None)


def start_sampling(pids: list[int], leader: int, seconds: int, out: Path) -> list[tuple]:
    """One py-spy per process (api, engine cores, vLLM workers): collapsed stacks, native
    frames."""
    binary = py_spy()
    if binary is None:
        print("py-spy not found: no samples")
        return []
    out.mkdir(parents=True, exist_ok=True)
    started = []
    for pid in pids:
        name = role(pid, leader)
        if name not in ("api", "engine") and not name.startswith("VLLM"):
            continue
        path = out / f"pyspy-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}-{pid}.txt"  # $OUT's rule
        # --native pauses the process at each sample (it cannot read native stacks otherwise):
        # sampled batches are timed apart from the measured ones
        cmd = [binary, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "100",
               "--format", "raw", "--native", "--output", str(path)]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        started.append((proc, path))
    return started


def finish_sampling(started: list[tuple], top: int = 25) -> dict[str, list]:
    """Wait for the samplers; per file, the functions most often on top of the stack."""
    summaries = {}
    for proc, path in started:
        _, err = proc.communicate(timeout=120)
        if not path.exists():
            print(f"py-spy wrote nothing for {path.name}: {err.strip()[:300]}")
            continue
        summaries[path.name] = leaf_share(path, top)
        print(f"\n{path.name}: share of samples by innermost frame")
        for name, share in summaries[path.name][:top]:
            print(f"  {share:6.1%}  {name}")
    return summaries


def leaf_share(path: Path, top: int) -> list[tuple[str, float]]:
    """Collapsed stacks (`a;b;c N`) -> the innermost frames' share of all samples."""
    leaves: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            leaves[stack.rsplit(";", 1)[-1][:160]] += int(count)
    total = sum(leaves.values()) or 1
    return [(name, n / total) for name, n in leaves.most_common(top)]


def python_share(path: Path, top: int) -> list[tuple[str, float]]:
    """The innermost Python frame of each sample (native frames below it folded in), by share:
    which of vLLM's or our functions the process was in, waiting or working."""
    frames: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not (stack and count.isdigit()):
            continue
        python = [f for f in stack.split(";") if ".py:" in f]
        frames[python[-1][:160] if python else "(native only)"] += int(count)
    total = sum(frames.values()) or 1
    return [(name, n / total) for name, n in frames.most_common(top)]


if __name__ == "__main__":
    for label, rows in (("innermost frame", leaf_share), ("innermost Python frame", python_share)):
        print(f"{sys.argv[1]}: share of samples by {label}")
        for name, share in rows(Path(sys.argv[1]), 30):
            print(f"{share:6.1%}  {name}")
