"""Chat prompts for the engine: render with the model's template, tokenize, cut what is too long.

    python -c "from transformers import AutoTokenizer as A; \
from qaserve.answering.prompts import PromptBuilder as P; \
b = P(A.from_pretrained('model/Qwen2.5-0.5B-Instruct'), 'auto'); \
print(b.question_prompts('You are a TA.', ['What is CUDA?'], [4000])[0])"

An over-long prompt must never fail a batch: the question is cut (head and tail kept) instead,
then, as a last resort, the system prompt is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

ELLIPSIS = "…"
ZERO_WIDTH_SPACE = "\u200b"
_REPLACEMENT = "\ufffd"  # what decoding half of a multi-byte character gives
_MAX_CUT_ATTEMPTS = 16

Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt and its token ids; `truncated` when part of the input was cut."""

    text: str
    token_ids: list[int]
    truncated: bool


class PromptBuilder:
    """Renders and tokenizes chat prompts with a Hugging Face tokenizer."""

    def __init__(self, tokenizer: Any, mode: Literal["auto", "chatml"]) -> None:
        self.tokenizer = tokenizer
        self.mode = mode
        self.use_template = mode == "auto" and bool(getattr(tokenizer, "chat_template", None))
        self._control = _control_tokens(tokenizer)

    def defuse(self, text: str) -> str:
        """`text` with the tokenizer's control tokens (`<|im_end|>`, …) broken by a zero-width
        space, so text from a client can never close its turn or open a system turn."""
        for token in self._control:
            if token in text:
                text = text.replace(token, token[0] + ZERO_WIDTH_SPACE + token[1:])
        return text

    def render(self, messages: Messages) -> str:
        """The prompt text, ending with the assistant's generation prompt."""
        messages = [{**m, "content": self.defuse(m["content"])} for m in messages]
        if self.use_template:
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True, enable_thinking=False
            )
            return str(text)
        turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return turns + "<|im_start|>assistant\n"

    def messages_for(self, system: str, question: str) -> Messages:
        """System message (if any) and the question as the user's turn."""
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": question})
        return messages

    def question_prompts(
        self, system: str, questions: list[str], max_prompt_tokens: list[int]
    ) -> list[Prompt]:
        """One prompt per question, each cut to fit its own token limit."""
        if len(questions) != len(max_prompt_tokens):
            raise ValueError(
                f"{len(questions)} questions but {len(max_prompt_tokens)} prompt-token limits"
            )
        texts = [self.render(self.messages_for(system, q)) for q in questions]
        prompts = []
        for question, limit, text, ids in zip(
            questions, max_prompt_tokens, texts, self._encode(texts), strict=True
        ):
            if len(ids) <= limit:
                prompts.append(Prompt(text, ids, truncated=False))
            else:
                prompts.append(self._fit_question(system, question, limit))
        return prompts

    def chat_prompt(self, messages: Messages, max_prompt_tokens: int) -> Prompt:
        """Render a conversation; if too long drop the oldest turns, then cut the last question."""
        prompt = self._prompt(messages, truncated=False)
        if len(prompt.token_ids) <= max_prompt_tokens or not messages:
            return prompt
        target = _last_user_index(messages)
        droppable = [i for i, m in enumerate(messages) if i < target and m["role"] != "system"]

        def without_oldest(count: int) -> Messages:
            dropped = set(droppable[:count])
            return [m for i, m in enumerate(messages) if i not in dropped]

        # Token counts fall as more turns go, so search for the fewest turns to drop.
        low, high, best = 1, len(droppable), None
        while low <= high:
            middle = (low + high) // 2
            candidate = self._prompt(without_oldest(middle), truncated=True)
            if len(candidate.token_ids) <= max_prompt_tokens:
                best, high = candidate, middle - 1
            else:
                low = middle + 1
        if best is not None:
            return best
        has_system = any(m["role"] == "system" for m in messages[:target])
        for keep_system in (True, False) if has_system else (True,):

            def with_content(cut: str, keep_system: bool = keep_system) -> Messages:
                return [
                    {**m, "content": cut} if i == target else m
                    for i, m in enumerate(messages)
                    if i >= target or (keep_system and m["role"] == "system")
                ]

            cut = self._cut_to_fit(with_content, messages[target]["content"], max_prompt_tokens)
            if cut is not None:
                return cut
        return self._prompt(with_content(""), truncated=True)

    def _fit_question(self, system: str, question: str, limit: int) -> Prompt:
        for sys_prompt in dict.fromkeys([system, ""]):  # the system prompt goes only as last resort

            def with_question(cut: str, sys_prompt: str = sys_prompt) -> Messages:
                return self.messages_for(sys_prompt, cut)

            prompt = self._cut_to_fit(with_question, question, limit)
            if prompt is not None:
                return prompt
        return self._prompt(self.messages_for("", ""), truncated=True)

    def _cut_to_fit(
        self, build: Callable[[str], Messages], content: str, limit: int
    ) -> Prompt | None:
        """Shorten `content` (head and tail kept) until `build(content)` fits; None if "" won't."""
        empty = self._prompt(build(""), truncated=True)
        room = limit - len(empty.token_ids)
        if room < 0:
            return None
        ids = self._encode_one(content)
        keep = len(ids) if len(ids) <= room else room - 1  # one token for the ellipsis
        for _ in range(_MAX_CUT_ATTEMPTS):
            if keep <= 0:
                break
            prompt = self._prompt(build(self._shorten(content, ids, keep)), truncated=True)
            excess = len(prompt.token_ids) - limit
            if excess <= 0:
                return prompt
            keep -= excess  # token boundaries merge differently after the cut: adjust and retry
        return empty

    def _shorten(self, content: str, ids: list[int], keep: int) -> str:
        """`content` in about `keep` tokens: two thirds from its start, one third from its end."""
        if keep >= len(ids):
            return content
        head = (2 * keep + 2) // 3
        tail = keep - head
        head_text = self.tokenizer.decode(ids[:head]).rstrip(_REPLACEMENT)
        tail_text = (
            self.tokenizer.decode(ids[len(ids) - tail :]).lstrip(_REPLACEMENT) if tail else ""
        )
        return head_text + ELLIPSIS + tail_text

    def _prompt(self, messages: Messages, truncated: bool) -> Prompt:
        text = self.render(messages)
        return Prompt(text, self._encode_one(text), truncated)

    def _encode_one(self, text: str) -> list[int]:
        return self._encode([text])[0]

    def _encode(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        return [list(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _last_user_index(messages: Messages) -> int:
    """Index of the message to cut last: the final user turn, else the final message."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i]["role"] == "user":
            return i
    return len(messages) - 1


def _control_tokens(tokenizer: Any) -> list[str]:
    """The special tokens this tokenizer parses out of text (Qwen: <|im_start|>, <|im_end|>, …)."""
    found = set(getattr(tokenizer, "all_special_tokens", []) or [])
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    found.update(t.content for t in decoder.values() if getattr(t, "special", False))
    return sorted((t for t in found if len(t) > 1), key=len, reverse=True)
