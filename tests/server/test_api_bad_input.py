"""A bad item, a bad parameter or a bad setting never costs a grading run (issue 18), on the
fake engine: malformed and unencodable items, budgets near the context, refused parameters,
the warm-up that every item fails, a dead engine's batch, the OpenAI extras.

    pytest tests/server/test_api_bad_input.py -q
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from qaserve.server.app import create_app
from qaserve.settings import load_settings
from tests.support.fake_engine import ClientFactory, FakeEngine, assert_error, metric

# JSON as a client can legally send it: a lone UTF-16 surrogate, escaped
SURROGATE_BATCH = '{"prompt": ["什么是warp？", "bad \\ud800 item", "ok"], "max_new_tokens": 8}'


def post_raw(client: TestClient, path: str, raw: str) -> object:
    return client.post(path, content=raw, headers={"content-type": "application/json"})


def test_a_surrogate_item_is_answered_with_the_rest(make_client: ClientFactory) -> None:
    client, fake = make_client()
    r = post_raw(client, "/predict", SURROGATE_BATCH)
    assert r.status_code == 200, r.text  # was: 500 internal error: TypeError
    answers = r.json()["response"]
    assert len(answers) == 3 and all(answers)
    assert fake.last.questions[1] == "bad \ufffd item"
    single = post_raw(client, "/predict", '{"prompt": "x \\udfff"}')
    assert single.status_code == 200 and single.json()["response"]


def test_a_surrogate_in_a_chat_message_is_answered(make_client: ClientFactory) -> None:
    client, _ = make_client()
    raw = '{"messages": [{"role": "user", "content": "bad \\ud800"}], "stop": "\\udc00"}'
    r = post_raw(client, "/v1/chat/completions", raw)
    assert r.status_code == 200, r.text


def test_a_malformed_item_is_answered_empty_and_counted(make_client: ClientFactory) -> None:
    client, fake = make_client()
    r = client.post("/predict", json={"prompt": ["a", {"x": 1}, ["b"], "c"]})
    assert r.status_code == 200, r.text  # was: 422 for the whole batch
    answers = r.json()["response"]
    assert answers[1:3] == ["", ""] and answers[0] and answers[3]
    assert fake.last.questions == ["a", "c"]
    assert metric(client, "qa_malformed_items_total") == 2


def test_a_large_budget_keeps_the_whole_prompt(make_client: ClientFactory) -> None:
    client, fake = make_client(max_model_len=2048, max_new_tokens=2048, token_budgets=False)
    r = client.post("/predict", json={"prompt": ["什么是CUDA？"], "max_new_tokens": 2048})
    assert r.status_code == 200
    (prompt,) = fake.last.prompts
    (params,) = fake.last.params
    assert "Programming Massively Parallel Processors" in prompt  # the system prompt stayed
    assert "什么是CUDA？" in prompt
    ids = len(fake.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert params.max_new_tokens == 2048 - ids  # the budget got the room the prompt left
    assert metric(client, "qa_truncated_prompts_total") == 0


def test_a_large_chat_budget_keeps_the_system_prompt(make_client: ClientFactory) -> None:
    client, fake = make_client(max_model_len=2048)
    body = {"messages": [{"role": "user", "content": "什么是warp？"}], "max_tokens": 2000}
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    (prompt,) = fake.last.prompts
    assert "Programming Massively Parallel Processors" in prompt  # was: dropped (71 -> 28)
    assert fake.last.params[0].max_new_tokens <= 2000


def test_an_engine_error_is_logged_once_per_batch_with_its_message(
    make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = make_client()
    with caplog.at_level(logging.WARNING, logger="qaserve"):
        client.post("/predict", json={"prompt": ["a BOOM", "b", "c BOOM", "d BOOM"]})
    lines = [r.getMessage() for r in caplog.records if "failed in the engine" in r.getMessage()]
    assert lines == ["3 item(s) failed in the engine: RuntimeError: told to fail"]


def test_a_warm_up_the_engine_refuses_entirely_stops_the_start(tiny_model_dir: Path) -> None:
    fake = FakeEngine()
    fake.crash = RuntimeError("stop cannot contain an empty string.")
    settings = load_settings(model_dir=tiny_model_dir, warmup=True)
    app = create_app(settings, lambda s, d, tok: fake.attach(tok), exit_on_engine_death=False)
    with (
        pytest.raises(RuntimeError, match="every warm-up item failed.*empty string"),
        TestClient(app),
    ):
        pass  # a server that would answer "" to every question never reports ready


def test_a_batch_lost_to_a_dead_engine_is_not_counted_as_answered(
    make_client: ClientFactory,
) -> None:
    client, fake = make_client()
    items = metric(client, "qa_items_total")
    fake.healthy = False
    r = client.post("/predict", json={"prompt": ["a BOOM", "b BOOM"]})
    assert_error(r, 503)
    assert metric(client, "qa_items_total") == items


def test_a_dead_replica_still_answers_the_survivors_items(make_client: ClientFactory) -> None:
    client, fake = make_client()
    fake.healthy = False  # one engine died; the other answered its items
    r = client.post("/predict", json={"prompt": ["a BOOM", "b", "c"]})
    assert r.status_code == 200, r.text
    assert r.json()["response"][0] == "" and all(r.json()["response"][1:])


def test_chat_presence_penalty_reaches_the_engine(make_client: ClientFactory) -> None:
    client, fake = make_client()
    body = {"messages": [{"role": "user", "content": "q"}], "presence_penalty": 0.5}
    assert client.post("/v1/chat/completions", json=body).status_code == 200
    assert fake.last.params[0].presence_penalty == 0.5


@pytest.mark.parametrize(
    "extra",
    [{"logprobs": True}, {"tools": [{"type": "function", "function": {"name": "f"}}]},
     {"response_format": {"type": "json_object"}}, {"logit_bias": {"100": 1}}],
)  # fmt: skip
def test_chat_extras_we_do_not_honour_are_a_400_naming_them(
    make_client: ClientFactory, extra: dict[str, object]
) -> None:
    client, fake = make_client()
    body = {"messages": [{"role": "user", "content": "q"}], **extra}
    error = assert_error(client.post("/v1/chat/completions", json=body), 400)
    assert next(iter(extra)) in error["message"]
    assert not fake.calls


def test_a_stream_reports_usage_when_asked_and_chat_counts_in_metrics(
    make_client: ClientFactory,
) -> None:
    client, _ = make_client()
    items = metric(client, "qa_items_total")
    body = {
        "messages": [{"role": "user", "content": "q"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with client.stream("POST", "/v1/chat/completions", json=body) as r:
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    last = json.loads(events[-2])
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 3
    assert last["usage"]["prompt_tokens"] > 0
    assert metric(client, "qa_items_total") == items + 1
    client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "q"}]})
    assert metric(client, "qa_items_total") == items + 2
    assert metric(client, "qa_answer_tokens_total") > 0
