"""Answer cleanup: drop reasoning blocks and leaked special tokens, trim whitespace.

    python -c "from qaserve.answering.cleanup import clean_answer; \
print(clean_answer('<think>x</think>\n\nSIMD  \n', trim_whitespace=True))"

Every step only deletes characters, so an answer never gets longer. Text between ``` fences is
never touched by `trim` (indentation and blank lines in code matter to the reader).
"""

from __future__ import annotations

import re

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
FENCE = "```"
SPECIAL_TOKENS = ("<|im_end|>", "<|im_start|>", "<|endoftext|>")

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)
_EXAMPLE = re.compile(r"(?:举例来说|举例|例如|比如)\s*[:：]")
_SENTENCE_END = re.compile(r"(?<=[。！？；!?;\n])")
_TRAILING_BLANKS = re.compile(r"[ \t]+(?=\n)")
_BLANK_LINE_RUN = re.compile(r"\n{3,}")


def strip_think(text: str) -> str:
    """Drop `<think>…</think>` blocks, a prefix up to an unopened `</think>`, an unclosed tail."""
    text = _THINK_BLOCK.sub("", text)
    # Qwen3 templates put `<think>` in the prompt, so the answer holds only the closing tag.
    close = text.rfind(THINK_CLOSE)
    if close >= 0:
        text = text[close + len(THINK_CLOSE) :]
    opening = text.find(THINK_OPEN)
    if opening >= 0:
        text = text[:opening]
    return text


def remove_special_tokens(text: str) -> str:
    """Drop leaked chat-template tokens (repeat: removing one can join the halves of another)."""
    while any(token in text for token in SPECIAL_TOKENS):
        for token in SPECIAL_TOKENS:
            text = text.replace(token, "")
    return text


def _trim_prose(part: str) -> str:
    return _BLANK_LINE_RUN.sub("\n\n", _TRAILING_BLANKS.sub("", part))


def trim(text: str) -> str:
    """Outside ``` fences: drop blanks at line ends, cap blank-line runs; strip the whole answer."""
    parts = text.split(FENCE)  # odd indexes lie inside a fence
    for i in range(0, len(parts), 2):
        parts[i] = _trim_prose(parts[i])
    parts[0] = parts[0].lstrip()
    if len(parts) % 2 == 1:  # the answer ends outside a fence; an unclosed fence stays as it is
        parts[-1] = parts[-1].rstrip()
    return FENCE.join(parts)


def clean_answer(text: str, trim_whitespace: bool) -> str:
    """The answer a user sees: no reasoning, no special tokens, optionally trimmed."""
    while True:  # removing a special token can form a think tag, and the other way round
        cleaned = remove_special_tokens(strip_think(text))
        if cleaned == text:
            break
        text = cleaned
    return trim(text) if trim_whitespace else text


def shorten(text: str, trim_examples: bool, max_sentences: int) -> str:
    """The predecessor's short-answer post-processing (OUTPUT_TRIM_EXAMPLES, OUTPUT_MAX_SENTENCES):
    cut from the first "例如："-like phrase, keep the first `max_sentences` sentences (0: all).
    Unlike the predecessor's, the sentences keep their punctuation and line breaks; answers
    with a ``` fence are left alone."""
    if FENCE in text:
        return text
    if trim_examples:
        found = _EXAMPLE.search(text)
        if found and text[: found.start()].strip():  # an answer that is only an example stays
            text = text[: found.start()]
    if max_sentences > 0:
        text = "".join(_SENTENCE_END.split(text)[:max_sentences])
    return text.strip()
