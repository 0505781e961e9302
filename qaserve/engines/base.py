"""The one interface every inference engine implements, and the types it speaks.

Engines take prompts already rendered and tokenized (`qaserve.answering.prompts`), so both engines
answer from exactly the same token ids.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class GenParams:
    """Sampling parameters of one item; defaults come from Settings, overrides from requests."""

    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass
class GenResult:
    """What one item produced; `text` is whatever was generated, even when cut or failed."""

    text: str = ""
    token_count: int = 0
    finish: str = "stop"  # stop | length | deadline | error
    error: str | None = None


@dataclass(frozen=True)
class EngineInfo:
    name: str
    version: str
    model: str
    details: dict[str, Any] = field(default_factory=dict)


class Engine(Protocol):
    info: EngineInfo

    async def generate(
        self, prompts: list[list[int]], params: list[GenParams], deadline: float | None
    ) -> list[GenResult]:
        """Answer all prompts at once; `deadline` is a `time.monotonic()` instant.

        Returns one result per prompt in order; never raises for one bad item."""
        ...

    def stream(
        self, prompt: list[int], params: GenParams, deadline: float | None
    ) -> AsyncGenerator[tuple[str, str | None, int], None]:
        """Yield (text increment, None, new tokens) of one answer; the last has its finish
        reason. Past `deadline` (a `time.monotonic()` instant) the answer may be cut short."""
        ...

    async def check_health(self) -> bool:
        """False once the engine is dead."""
        ...

    async def close(self) -> None: ...
