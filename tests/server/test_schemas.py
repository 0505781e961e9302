"""Request bodies: `/predict`'s prompt/prompts forms and the per-request overrides.

pytest tests/server/test_schemas.py -q
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from qaserve.server.schemas import ChatRequest, PredictRequest, SystemPromptUpdate


@pytest.mark.parametrize(
    ("body", "questions", "is_batch"),
    [
        ({"prompt": "什么是CUDA？"}, ["什么是CUDA？"], False),
        ({"prompt": ""}, [""], False),
        ({"prompt": ["a", "b", "c"]}, ["a", "b", "c"], True),
        ({"prompt": []}, [], True),
        ({"prompts": "a"}, ["a"], False),
        ({"prompts": ["a", "b"]}, ["a", "b"], True),
        ({"prompt": None, "prompts": ["a"]}, ["a"], True),
        ({"prompt": ["a", None, "b"]}, ["a", "", "b"], True),
        ({"prompt": [1, 2.5, -3]}, ["1", "2.5", "-3"], True),
        ({"prompt": ["a"], "model": "ignored", "stream": False}, ["a"], True),
    ],
)
def test_questions(body: dict[str, Any], questions: list[str], is_batch: bool) -> None:
    assert PredictRequest.model_validate(body).questions() == (questions, is_batch, 0)


def test_order_and_length_kept() -> None:
    items = [f"q{i}" for i in range(1000)]
    assert PredictRequest.model_validate({"prompt": items}).questions() == (items, True, 0)


def test_json_round_trip() -> None:
    raw = '{"prompts": ["x", null, 7]}'
    assert PredictRequest.model_validate_json(raw).questions() == (["x", "", "7"], True, 0)


@pytest.mark.parametrize("bad", [["a"], {"x": 1}], ids=["list", "object"])
def test_a_malformed_item_is_answered_empty_not_its_whole_batch(bad: Any) -> None:
    # issue 18: one non-string item used to fail the whole batch with 422
    questions = PredictRequest.model_validate({"prompt": ["a", bad, "b"]}).questions()
    assert questions == (["a", "", "b"], True, 1)


@pytest.mark.parametrize("field", ["prompt", "prompts"])
def test_lone_surrogates_become_replacement_characters(field: str) -> None:
    # FastAPI decodes bodies with json.loads, which accepts escaped lone surrogates
    raw = json.loads('["ok", "bad \\ud800 item", "pair \\ud83d\\ude00"]')
    texts = PredictRequest.model_validate({field: raw}).questions().texts
    assert texts == ["ok", "bad \ufffd item", "pair \U0001f600"]
    for text in texts:
        text.encode("utf-8")  # what a tokenizer needs
    single = PredictRequest.model_validate(json.loads('{"prompt": "x \\udfff"}')).questions()
    assert single.texts == ["x \ufffd"]


def test_chat_text_is_made_encodable_and_text_parts_are_joined() -> None:
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    system = json.loads('{"role": "developer", "content": "s \\ud800"}')
    body = ChatRequest.model_validate({"messages": [system, {"role": "user", "content": parts}]})
    assert [m.plain() for m in body.messages] == [
        {"role": "system", "content": "s \ufffd"},
        {"role": "user", "content": "ab"},
    ]


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"tools": [{"type": "function"}]}, "tools"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"logit_bias": {"1": 5}}, "logit_bias"),
    ],
)
def test_chat_fields_we_cannot_honour_are_named(extra: dict[str, Any], named: str) -> None:
    body = ChatRequest.model_validate({"messages": [{"role": "user", "content": "a"}], **extra})
    assert body.unsupported() == [named]
    off = {"logprobs": False, "tools": [], "response_format": {"type": "text"}, "logit_bias": {}}
    plain = ChatRequest.model_validate({"messages": [{"role": "user", "content": "a"}], **off})
    assert plain.unsupported() == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"prompt": None},
        {"prompt": None, "prompts": None},
        {"prompt": "a", "prompts": "b"},
        {"prompt": [], "prompts": []},
        {"prompt": {"text": "a"}},
    ],
    ids=["empty", "null", "both null", "both", "both lists", "object"],
)
def test_invalid_bodies(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PredictRequest.model_validate(body)


def test_error_messages_say_what_to_send() -> None:
    with pytest.raises(ValidationError, match="prompt"):
        PredictRequest.model_validate({})
    with pytest.raises(ValidationError, match="either"):
        PredictRequest.model_validate({"prompt": "a", "prompts": "b"})


def test_overrides_default_to_unset() -> None:
    overrides = PredictRequest.model_validate({"prompt": "a"}).overrides()
    assert set(overrides) == {
        "max_new_tokens",
        "temperature",
        "top_p",
        "top_k",
        "repetition_penalty",
        "frequency_penalty",
        "presence_penalty",
    }
    assert all(v is None for v in overrides.values())


def test_overrides_given() -> None:
    body = {"prompt": "a", "max_new_tokens": 32, "temperature": 0.3, "top_k": 5}
    overrides = PredictRequest.model_validate(body).overrides()
    assert (overrides["max_new_tokens"], overrides["temperature"], overrides["top_k"]) == (
        32,
        0.3,
        5,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_new_tokens", 0),
        ("max_new_tokens", 32769),
        ("temperature", -0.01),
        ("temperature", 2.01),  # vLLM's limit (issue 18: 2.5 gave 200 with every answer "")
        ("temperature", float("inf")),
        ("repetition_penalty", float("inf")),
        ("presence_penalty", 2.5),
        ("top_p", 0),
        ("top_p", 1.01),
        ("top_k", -1),
        ("repetition_penalty", 0),
        ("frequency_penalty", -2.5),
        ("frequency_penalty", 2.5),
    ],
)
def test_out_of_range_overrides(name: str, value: float) -> None:
    with pytest.raises(ValidationError, match=name):
        PredictRequest.model_validate({"prompt": "a", name: value})


def test_system_prompt_update() -> None:
    assert SystemPromptUpdate.model_validate({"system_prompt": ""}).system_prompt == ""
    assert SystemPromptUpdate.model_validate({"reset": True}).reset is True
    for bad in ({}, {"reset": False}, {"system_prompt": "x", "other": 1}):
        with pytest.raises(ValidationError):
            SystemPromptUpdate.model_validate(bad)


def test_chat_request_overrides() -> None:
    body = {
        "messages": [{"role": "user", "content": "q"}],
        "max_tokens": 10,
        "max_completion_tokens": 20,
        "stop": "END",
        "seed": 1,
    }
    overrides = ChatRequest.model_validate(body).overrides()
    assert overrides["max_new_tokens"] == 20
    assert overrides["stop"] == ("END",)
    assert overrides["seed"] == 1
    no_stop = ChatRequest.model_validate({"messages": [{"role": "user", "content": "q"}]})
    assert no_stop.overrides()["stop"] is None and no_stop.overrides()["max_new_tokens"] is None
