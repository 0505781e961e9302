"""The sampling ranges we accept (settings, request schemas) are exactly what the installed
vLLM accepts: every boundary value we take, vLLM takes; the first value past it, both refuse.

    pytest tests/engines/test_sampling_limits.py -q
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from qaserve.engines.base import GenParams
from qaserve.engines.vllm import sampling_params
from qaserve.server.schemas import PredictRequest
from qaserve.settings import SettingsError, load_settings

# (request field, values at the edge of what we accept, values just past it)
EDGES: list[tuple[str, list[float], list[float]]] = [
    ("temperature", [0.0, 2.0], [-0.001, 2.001, math.inf, math.nan]),
    ("top_p", [1e-6, 1.0], [0.0, 1.001]),
    ("top_k", [0, 1, 1000], [-2]),
    ("repetition_penalty", [1e-6, 1.0, 1e6], [0.0, -1.0, math.inf]),
    ("frequency_penalty", [-2.0, 2.0], [-2.001, 2.001]),
    ("presence_penalty", [-2.0, 2.0], [-2.001, 2.001]),
]


def vllm_accepts(**fields: Any) -> bool:
    from vllm.exceptions import VLLMValidationError

    try:
        sampling_params(GenParams(max_new_tokens=8, **fields), [1], final_only=True)
    except (VLLMValidationError, ValueError):
        return False
    return True


@pytest.mark.parametrize(("field", "inside", "outside"), EDGES, ids=[e[0] for e in EDGES])
def test_the_schema_accepts_what_vllm_accepts(
    field: str, inside: list[float], outside: list[float]
) -> None:
    for value in inside:
        PredictRequest.model_validate({"prompt": "q", field: value})
        assert vllm_accepts(**{field: value}), f"{field}={value}: we take it, vLLM does not"
    for value in outside:
        with pytest.raises(ValidationError):
            PredictRequest.model_validate({"prompt": "q", field: value})
        if field != "top_k":  # vLLM takes -1 (off); we spell off as 0
            assert not vllm_accepts(**{field: value}), f"{field}={value}: vLLM takes it"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("TEMPERATURE", "3"), ("REPETITION_PENALTY", "inf"), ("STOP_STRINGS", '[""]')],
)
def test_settings_vllm_refuses_stop_the_server_at_start(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    # issue 18: each of these gave a healthy server that answered "" to every question
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_an_empty_stop_string_is_what_vllm_refuses() -> None:
    assert not vllm_accepts(stop=("",))
    assert vllm_accepts(stop=("END",))
