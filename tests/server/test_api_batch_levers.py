"""Batch-path levers on a fake engine: identical greedy items generated once (DEDUPE_QUESTIONS),
the garbage collector frozen after start and paused during a batch (GC_FREEZE).

pytest tests/server/test_api_batch_levers.py -q
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from qaserve.engines.base import GenParams, GenResult
from qaserve.server.app import create_app
from qaserve.settings import load_settings
from tests.support.fake_engine import ClientFactory, FakeEngine, metric

BATCH = [
    "什么是warp？",
    "什么是SIMT？",
    "什么是warp？",
    "什么是warp？",
    "什么是SIMT？",
    "BOOM",
    "BOOM",
]


@pytest.fixture(autouse=True)
def _unfreeze() -> Iterator[None]:
    yield
    gc.unfreeze()
    gc.enable()


def test_identical_greedy_items_are_generated_once(make_client: ClientFactory) -> None:
    client, fake = make_client()
    r = client.post("/predict", json={"prompt": BATCH})
    assert r.status_code == 200
    answers = r.json()["response"]
    assert answers == [fake.answer(q) if q != "BOOM" else "" for q in BATCH]
    assert fake.last.questions == ["什么是warp？", "什么是SIMT？", "BOOM"]
    assert metric(client, "qa_items_total") == len(BATCH)
    assert metric(client, "qa_failed_items_total") == 2  # both copies of the failed item count


def test_sampled_items_are_generated_apart(make_client: ClientFactory) -> None:
    client, fake = make_client()
    r = client.post("/predict", json={"prompt": BATCH, "temperature": 0.7})
    assert r.status_code == 200
    assert fake.last.questions == BATCH


def test_dedupe_off_sends_every_item(make_client: ClientFactory) -> None:
    client, fake = make_client(dedupe_questions=False)
    client.post("/predict", json={"prompt": BATCH})
    assert fake.last.questions == BATCH


def test_items_differing_only_in_budget_are_not_shared(make_client: ClientFactory) -> None:
    client, fake = make_client()
    question = "什么是warp？"
    client.post("/predict", json={"prompt": [question, question], "max_new_tokens": 5})
    assert fake.last.questions == [question]
    assert [p.max_new_tokens for p in fake.last.params] == [5]


class GcWatchingEngine(FakeEngine):
    """Records whether the cyclic collector was enabled while each batch was generated."""

    def __init__(self) -> None:
        super().__init__()
        self.collector_on: list[bool] = []

    async def generate(
        self, prompts: list[list[int]], params: list[GenParams], deadline: float | None
    ) -> list[GenResult]:
        self.collector_on.append(gc.isenabled())
        return await super().generate(prompts, params, deadline)


@pytest.mark.parametrize("freeze", [True, False])
def test_gc_frozen_after_start_and_paused_during_a_batch(
    tiny_model_dir: Path, freeze: bool
) -> None:
    gc.unfreeze()
    fake = GcWatchingEngine()
    settings = load_settings(model_dir=tiny_model_dir, warmup=False, gc_freeze=freeze)
    app = create_app(settings, engine_factory=lambda s, d, tok: fake.attach(tok))
    with TestClient(app) as client:
        assert (gc.get_freeze_count() > 0) is freeze
        client.post("/predict", json={"prompt": ["什么是warp？", "什么是SIMT？"]})
    assert fake.collector_on == [not freeze]
    assert gc.isenabled()  # back on once the batch is answered
