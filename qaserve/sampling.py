"""The sampling values the engine accepts, in one home: the settings, the request schemas and
the web console all take their ranges from here, so nothing vLLM would refuse gets through.

    python -c "from qaserve.sampling import TEMPERATURE_MAX; print(TEMPERATURE_MAX)"
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

# Valid sampling values, as vLLM checks them (SamplingParams._verify_args; 0.32 is the strictest
# release we run: temperature at most 2). One home: the settings, the request schemas and the
# console use these, so nothing the engine would refuse is accepted.
TEMPERATURE_MAX = 2.0
Temperature = Annotated[float, Field(ge=0, le=TEMPERATURE_MAX, allow_inf_nan=False)]
TopP = Annotated[float, Field(gt=0, le=1)]
TopK = Annotated[int, Field(ge=0)]
RepetitionPenalty = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Penalty = Annotated[float, Field(ge=-2, le=2)]  # frequency and presence penalties


def _non_empty_stop(value: str) -> str:
    if not value:
        raise ValueError("stop cannot contain an empty string (vLLM refuses it)")
    return value


StopString = Annotated[str, AfterValidator(_non_empty_stop)]
