"""Request and response bodies of the HTTP API (grader contract and OpenAI-compatible)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from qaserve.sampling import (
    Penalty,
    RepetitionPenalty,
    StopString,
    Temperature,
    TopK,
    TopP,
)
from qaserve.server.errors import ERROR_TYPES


def encodable(text: str) -> str:
    """`text` with lone UTF-16 surrogates (legal escaped in JSON, `\\ud800`) as U+FFFD: no
    tokenizer can encode them. The one place client text is made safe."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _encodable_input(value: Any) -> Any:
    return encodable(value) if isinstance(value, str) else value


# before pydantic's own checks: its length constraints refuse a lone surrogate outright
ClientText = Annotated[str, BeforeValidator(_encodable_input)]
ClientStop = Annotated[StopString, BeforeValidator(_encodable_input)]


class Questions(NamedTuple):
    """A request's questions as strings, whether it was a batch, and how many of its items
    were neither text, a number nor null (each answered "")."""

    texts: list[str]
    is_batch: bool
    malformed: int = 0


def _item_text(item: Any) -> str | None:
    """A batch item as text: strings as given, numbers stringified, null ""; else None."""
    if item is None:
        return ""
    if isinstance(item, str):
        return encodable(item)
    if isinstance(item, (int, float)):
        return str(item)
    return None


class SamplingFields(BaseModel):
    """Sampling overrides both APIs take; unset fields keep the server's settings. Their
    ranges are the settings' (what vLLM accepts)."""

    temperature: Temperature | None = None
    top_p: TopP | None = None
    top_k: TopK | None = None
    repetition_penalty: RepetitionPenalty | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None


class SamplingOverrides(SamplingFields):
    """Per-request generation overrides of `/predict`."""

    max_new_tokens: int | None = Field(None, ge=1, le=32768)

    def overrides(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SamplingOverrides.model_fields}


class PredictRequest(SamplingOverrides):
    """`{"prompt": "..."}` or `{"prompt": [...]}`; `prompts` is accepted as an alias."""

    model_config = ConfigDict(extra="ignore")
    # a malformed item ({"x": 1}) is answered "" rather than failing its whole batch
    prompt: ClientText | list[Any] | None = None
    prompts: ClientText | list[Any] | None = None

    @model_validator(mode="after")
    def _one_field(self) -> PredictRequest:
        if self.prompt is None and self.prompts is None:
            raise ValueError('body needs "prompt" (a string or a list of strings)')
        if self.prompt is not None and self.prompts is not None:
            raise ValueError('give either "prompt" or "prompts", not both')
        return self

    def questions(self) -> Questions:
        given = self.prompt if self.prompt is not None else self.prompts
        if isinstance(given, str):
            return Questions([given], False)
        assert given is not None
        texts = [_item_text(item) for item in given]
        return Questions([t or "" for t in texts], True, texts.count(None))


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


class TextPart(BaseModel):
    type: Literal["text"]
    text: ClientText


class ChatMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant"]
    content: ClientText | list[TextPart]

    def plain(self) -> dict[str, str]:
        """The message as the chat template takes it: text parts joined, `developer` (newer
        OpenAI clients' name for it) as `system`."""
        text = self.content
        if not isinstance(text, str):
            text = "".join(part.text for part in text)
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class StreamOptions(BaseModel):
    include_usage: bool = False


# OpenAI request fields this server does not implement: refused with a 400 naming them when
# set to anything but their "off" value, never silently ignored
UNSUPPORTED_CHAT_FIELDS = (
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "response_format",
)


class ChatRequest(SamplingFields):
    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1, le=32768)
    max_completion_tokens: int | None = Field(None, ge=1, le=32768)
    stop: ClientStop | list[ClientStop] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=1)
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    tools: list[Any] | None = None
    tool_choice: Any = None
    functions: list[Any] | None = None
    function_call: Any = None
    response_format: dict[str, Any] | None = None

    def unsupported(self) -> list[str]:
        """The fields set here that this server cannot honour."""
        off: tuple[Any, ...] = (None, False, {}, [], "none", {"type": "text"})
        return [name for name in UNSUPPORTED_CHAT_FIELDS if getattr(self, name) not in off]

    def usage_in_stream(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def overrides(self) -> dict[str, Any]:
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        return {
            "max_new_tokens": self.max_completion_tokens or self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "repetition_penalty": self.repetition_penalty,
            "frequency_penalty": self.frequency_penalty,
            "presence_penalty": self.presence_penalty,
            "stop": tuple(stop) if stop else None,
            "seed": self.seed,
        }


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: int


class ErrorResponse(BaseModel):
    """The one body of every non-2xx answer (qaserve.server.errors.error_body)."""

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for a route: each status documented with the one error body."""
    return {
        status: {"model": ErrorResponse, "description": ERROR_TYPES.get(status, "error")}
        for status in statuses
    }
