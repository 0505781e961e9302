"""ENGINE_REPLICAS: how a batch is dealt over several vLLM engines (no engine needed)."""

from __future__ import annotations

from collections import Counter

from qaserve.engines.base import EngineInfo, GenParams
from qaserve.engines.vllm_engine import VllmEngine


def _engine(replicas: int) -> VllmEngine:
    engines = [f"engine-{i}" for i in range(replicas)]
    return VllmEngine(engines, EngineInfo("vllm", "test", "m"), stop_token_ids=[])


def test_every_item_gets_one_engine_and_loads_balance() -> None:
    engine = _engine(3)
    params = [GenParams(max_new_tokens=b) for b in [384, 128, 128, 256, 384, 128, 256, 128, 384]]
    owners = engine._deal(params)
    assert len(owners) == len(params)
    tokens = Counter()
    for owner, p in zip(owners, params, strict=True):
        tokens[owner] += p.max_new_tokens
    assert set(tokens) == {"engine-0", "engine-1", "engine-2"}
    # longest budgets are spread first: each replica gets one of the three 384-token items
    longest = [o for o, p in zip(owners, params, strict=True) if p.max_new_tokens == 384]
    assert len(set(longest)) == 3
    assert max(tokens.values()) - min(tokens.values()) <= 256


def test_single_replica_takes_everything() -> None:
    owners = _engine(1)._deal([GenParams(max_new_tokens=8)] * 5)
    assert owners == ["engine-0"] * 5
