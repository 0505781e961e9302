"""Calibration samples for quantization: chat rows from a JSONL file, rendered with the model's
chat template (questions and answers), sampled and cut to a token limit.

    python quantize_awq.py --model model/merged --write-calibration calib.jsonl \
        --num-samples 128 --max-seq-len 512

Each input line is `{"messages": [{"role": "user", "content": ...},
{"role": "assistant", "content": ...}]}` (a system turn is optional; rows without one get the
server's system prompt, so calibration sees what the served model sees). The predecessor's
`{"text": question}` rows (its calib_*.jsonl) are read as a question without an answer: the
prompt up to the assistant's turn. `python -m qaserve.modeltools.quant.sample` writes such
files from data.jsonl, as its sample_calib_from_data.py did. Models without a chat
template are rendered as ChatML, as the server does (`qaserve.answering.prompts.PromptBuilder`).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qaserve.answering.prompts import PromptBuilder
from qaserve.defaults import DEFAULT_SYSTEM_PROMPT

log = logging.getLogger(__name__)
TEXT_ROW = "_text_row"  # marks a message made from a {"text": ...} row

ROLES = ("system", "user", "assistant")


class CalibrationError(ValueError):
    """The calibration data cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Sample:
    """One calibration sample: the rendered conversation, cut to `max_seq_len` tokens."""

    row: int  # 1-based line number in the JSONL file
    text: str  # the text the model sees (decoded from `input_ids`, so after any cut)
    input_ids: list[int]
    truncated: bool

    def record(self) -> dict[str, Any]:
        """What `--write-calibration` writes per line."""
        fields = asdict(self)
        del fields["input_ids"]
        return {**fields, "tokens": len(self.input_ids)}


def read_conversations(path: Path) -> Iterator[tuple[int, list[dict[str, str]]]]:
    """(line number, messages) of every usable row; rows without an answer are skipped."""
    if not path.is_file():
        raise CalibrationError(
            f"calibration data {path} not found: pass --data with a chat JSONL file "
            '(one {"messages": [{"role": "user", ...}, {"role": "assistant", ...}]} per line)'
        )
    skipped = 0
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            messages = _messages(line, f"{path}:{number}")
            if _is_text_row(messages) or any(
                m["role"] == "assistant" and m["content"].strip() for m in messages
            ):
                yield number, messages
            else:
                skipped += 1
    if skipped:
        log.warning("%s: %d rows without an assistant answer were skipped", path, skipped)


def _messages(line: str, where: str) -> list[dict[str, str]]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise CalibrationError(f"{where}: not JSON ({exc.msg})") from None
    messages = row.get("messages") if isinstance(row, dict) else None
    if messages is None and isinstance(row, dict) and isinstance(row.get("text"), str):
        return [{"role": "user", "content": row["text"], TEXT_ROW: "1"}]  # the predecessor's
    if not isinstance(messages, list) or not messages:
        raise CalibrationError(f'{where}: expected {{"messages": [...]}} with at least one turn')
    for message in messages:
        if not (
            isinstance(message, dict)
            and message.get("role") in ROLES
            and isinstance(message.get("content"), str)
        ):
            raise CalibrationError(
                f"{where}: every message needs a role ({', '.join(ROLES)}) and a string content"
            )
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _is_text_row(messages: list[dict[str, str]]) -> bool:
    return any(TEXT_ROW in m for m in messages)


def render(builder: Any, messages: list[dict[str, str]]) -> str:
    """The whole conversation as the model reads it, answer included, without a trailing
    generation prompt (a `{"text": ...}` row: its prompt, ending with the generation prompt).
    `builder` is a `qaserve.answering.prompts.PromptBuilder`."""
    if _is_text_row(messages):
        return str(builder.render([{"role": m["role"], "content": m["content"]} for m in messages]))
    if builder.use_template:
        safe = [{**m, "content": builder.defuse(m["content"])} for m in messages]
        text = builder.tokenizer.apply_chat_template(
            safe, tokenize=False, add_generation_prompt=False, enable_thinking=False
        )
        return str(text)
    last = len(messages) - 1 - [m["role"] for m in reversed(messages)].index("assistant")
    # ChatML like the server's fallback: the prompt up to the answer, then the answer's turn
    text = builder.render(messages[:last]) + builder.defuse(messages[last]["content"])
    text += "<|im_end|>\n"
    for message in messages[last + 1 :]:  # a trailing user turn (rare): rendered as ChatML
        text += f"<|im_start|>{message['role']}\n{builder.defuse(message['content'])}<|im_end|>\n"
    return text


def calibration_samples(
    tokenizer: Any,
    data: Path | str,
    *,
    num_samples: int,
    max_seq_len: int,
    seed: int = 0,
    system_prompt: str | None = None,
) -> list[Sample]:
    """`num_samples` rows drawn at random (seeded) from `data`, rendered and cut to
    `max_seq_len` tokens (the head is kept: system prompt, question, start of the answer)."""

    if num_samples < 1 or max_seq_len < 16:
        raise CalibrationError("num_samples must be >= 1 and max_seq_len >= 16")
    system = DEFAULT_SYSTEM_PROMPT if system_prompt is None else system_prompt
    rows = list(read_conversations(Path(data)))
    if not rows:
        raise CalibrationError(f"{data}: no row has an assistant answer to calibrate on")
    if len(rows) < num_samples:
        log.warning("%s: %d usable rows for %d samples", data, len(rows), num_samples)
    chosen = sorted(random.Random(seed).sample(rows, min(num_samples, len(rows))))
    builder = PromptBuilder(tokenizer, "auto")
    texts = []
    for _, messages in chosen:
        if system and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": system}, *messages]
        texts.append(render(builder, messages))
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    samples = []
    for (row, _), text, ids in zip(chosen, texts, encoded, strict=True):
        cut = list(ids[:max_seq_len])
        shown = text if len(cut) == len(ids) else str(tokenizer.decode(cut))
        samples.append(Sample(row, shown, cut, truncated=len(cut) < len(ids)))
    log.info("calibration: %s", describe(samples))
    return samples


def describe(samples: list[Sample]) -> str:
    lengths = [len(s.input_ids) for s in samples]
    cut = sum(s.truncated for s in samples)
    return (
        f"{len(samples)} samples, {sum(lengths)} tokens (min {min(lengths)}, max {max(lengths)}), "
        f"{cut} cut to the token limit"
    )


def stats(samples: list[Sample]) -> dict[str, int]:
    """Figures recorded in quant_info.json."""
    lengths = [len(s.input_ids) for s in samples]
    return {
        "samples": len(samples),
        "tokens": sum(lengths),
        "max_tokens": max(lengths),
        "min_tokens": min(lengths),
        "truncated": sum(s.truncated for s in samples),
    }


def write_samples(samples: list[Sample], path: Path) -> None:
    """One JSON object per sample: row, text, truncated, tokens."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for sample in samples:
            out.write(json.dumps(sample.record(), ensure_ascii=False) + "\n")
