"""Request and response bodies of the HTTP API (grader contract and OpenAI-compatible)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from qaserve.errors import ERROR_TYPES

# One item of a batch: strings as given; numbers are stringified, null becomes "" (answered "").
PromptItem = str | int | float | None


class SamplingFields(BaseModel):
    """Sampling overrides both APIs take; unset fields keep the server's settings."""

    temperature: float | None = Field(None, ge=0, le=5)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    repetition_penalty: float | None = Field(None, gt=0, le=5)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)


class SamplingOverrides(SamplingFields):
    """Per-request generation overrides of `/predict`."""

    max_new_tokens: int | None = Field(None, ge=1, le=32768)

    def overrides(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SamplingOverrides.model_fields}


class PredictRequest(SamplingOverrides):
    """`{"prompt": "..."}` or `{"prompt": [...]}`; `prompts` is accepted as an alias."""

    model_config = ConfigDict(extra="ignore")
    prompt: str | list[PromptItem] | None = None
    prompts: str | list[PromptItem] | None = None

    @model_validator(mode="after")
    def _one_field(self) -> PredictRequest:
        if self.prompt is None and self.prompts is None:
            raise ValueError('body needs "prompt" (a string or a list of strings)')
        if self.prompt is not None and self.prompts is not None:
            raise ValueError('give either "prompt" or "prompts", not both')
        return self

    def questions(self) -> tuple[list[str], bool]:
        """The questions as strings, and whether the request was a batch (list)."""
        given = self.prompt if self.prompt is not None else self.prompts
        if isinstance(given, str):
            return [given], False
        assert given is not None
        return ["" if item is None else str(item) for item in given], True


class PredictResponse(BaseModel):
    response: str | list[str]


class SystemPromptUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    system_prompt: str | None = Field(None, max_length=100_000)
    reset: bool = False

    @model_validator(mode="after")
    def _something(self) -> SystemPromptUpdate:
        if self.system_prompt is None and not self.reset:
            raise ValueError('give "system_prompt" (a string) or "reset": true')
        return self


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(SamplingFields):
    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1, le=32768)
    max_completion_tokens: int | None = Field(None, ge=1, le=32768)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=1)

    def overrides(self) -> dict[str, Any]:
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        return {
            "max_new_tokens": self.max_completion_tokens or self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "repetition_penalty": self.repetition_penalty,
            "frequency_penalty": self.frequency_penalty,
            "stop": tuple(stop) if stop else None,
            "seed": self.seed,
        }


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: int


class ErrorResponse(BaseModel):
    """The one body of every non-2xx answer (qaserve.errors.error_body)."""

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for a route: each status documented with the one error body."""
    return {
        status: {"model": ErrorResponse, "description": ERROR_TYPES.get(status, "error")}
        for status in statuses
    }
