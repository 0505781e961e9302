"""/metrics counters move with traffic; /info describes the running engine and model.

pytest tests/server/test_observability.py -q
"""

from __future__ import annotations

import httpx
import pytest

from tests.support.checks import metric, predict, question_set, read_metrics

pytestmark = pytest.mark.engine


def test_metrics_count_items_requests_and_characters(client: httpx.Client):
    ok = {"endpoint": "/predict", "status": "200"}
    before = read_metrics(client)
    answers = predict(client, question_set(5, prefix="指标"), max_new_tokens=8)
    single = predict(client, "什么是CUDA？", max_new_tokens=8)
    after = read_metrics(client)

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("qa_items_total") == 6
    assert delta("qa_requests_total", **ok) == 2
    assert delta("qa_answer_chars_total") == sum(map(len, answers)) + len(single)
    assert delta("qa_answer_tokens_total") >= 6
    assert delta("qa_answer_tokens_total") <= 6 * 8
    assert delta("qa_prompt_tokens_total") > 6 * 10  # each prompt has the system prompt
    assert delta("qa_batch_items_count") == 2
    assert delta("qa_batch_items_sum") == 6
    assert delta("qa_request_seconds_count", endpoint="/predict") == 2
    assert delta("qa_deadline_cut_items_total") == 0


def test_info_names_engine_and_smoke_model(client: httpx.Client):
    response = client.get("/info")
    assert response.status_code == 200
    info = response.json()
    assert info["ready"] is True
    assert info["engine"]["name"] == "vllm"
    assert info["engine"]["version"].startswith("0.")
    assert info["smoke_model"] is True  # build_tiny_qwen writes the smoke marker
    assert info["model_dir"].endswith("tiny-qwen")
    assert info["engine_args"]["enforce_eager"] is True
    assert info["engine_args"]["dtype"] == "float32"
    settings = info["settings"]
    assert settings["engine"] == "vllm"
    assert settings["admin_token"] == "***"  # the secret is masked
    assert info["uptime_s"] > 0
