"""Calibration questions sampled from a chat JSONL file, in the predecessor's format: one
`{"text": question}` per line plus a one-question-per-line text file.

    python sample_calib_from_data.py                       # data.jsonl -> calib_512.{jsonl,txt}
    N=8192 MAX_LEN=2048 OUT_JSONL=calib_8192.jsonl OUT_TXT=calib_8192.txt \
        python sample_calib_from_data.py

Its variables (DATA_JSONL, OUT_JSONL, OUT_TXT, N, SEED, MIN_LEN, MAX_LEN) are the defaults of
the flags. The draw is seeded but not the predecessor's: the same seed gives another sample.
`quantize_awq.py --data calib_512.jsonl` reads the result (each question rendered as a prompt).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

# the prompt prefixes of data.jsonl's variants that the predecessor's sampler removed
PREFIXES = (
    "简答：",
    "只给结论：",
    "要点式回答：",
    "为了评测请用最短答案回答：",
    "请直接输出关键术语+结论：",
    "请用最短答案回答：",
    "请直接给结论：",
)
TEXT_KEYS = ("prompt", "instruction", "question", "input", "text")
_SPACES = re.compile(r"\s+")


def user_texts(path: Path) -> Iterator[str]:
    """The user text of every row it can read (junk before a row's first `{` is skipped)."""
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            start = line.find("{")
            if start < 0:
                continue
            try:
                row = json.loads(line[start:])
            except json.JSONDecodeError:
                continue
            text = _user_text(row) if isinstance(row, dict) else None
            if text:
                yield text


def _user_text(row: dict[str, Any]) -> str | None:
    messages = row.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict) and message.get("role") == "user":
                content = message.get("content")
                return content if isinstance(content, str) else None
    return next((row[k] for k in TEXT_KEYS if isinstance(row.get(k), str)), None)


def clean(text: str, max_len: int) -> str:
    text = _SPACES.sub(" ", text).strip()
    for prefix in PREFIXES:  # one prefix, as there
        if text.startswith(prefix):
            text = text[len(prefix) :].strip()
            break
    return text[:max_len]


def sample(path: Path, n: int, seed: int, min_len: int, max_len: int) -> list[str]:
    """Up to `n` distinct cleaned questions, drawn with `seed` (all of them when fewer)."""
    seen: dict[str, None] = {}
    for text in user_texts(path):
        text = clean(text, max_len)
        if len(text) >= min_len:
            seen.setdefault(text)
    pool = list(seen)
    return pool if len(pool) <= n else random.Random(seed).sample(pool, n)


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--data", type=Path, default=Path(env.get("DATA_JSONL", "data.jsonl")), help="DATA_JSONL")
    add(
        "--out-jsonl",
        "--out_jsonl",
        type=Path,
        default=Path(env.get("OUT_JSONL", "calib_512.jsonl")),
    )
    add("--out-txt", "--out_txt", type=Path, default=Path(env.get("OUT_TXT", "calib_512.txt")))
    add("--n", type=int, default=int(env.get("N", "512")), help="questions (N, 512)")
    add("--seed", type=int, default=int(env.get("SEED", "42")), help="SEED (42)")
    add("--min-len", "--min_len", type=int, default=int(env.get("MIN_LEN", "6")))
    add("--max-len", "--max_len", type=int, default=int(env.get("MAX_LEN", "512")))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    texts = sample(args.data, args.n, args.seed, args.min_len, args.max_len)
    rows = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    args.out_jsonl.write_text(rows, encoding="utf-8")
    args.out_txt.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    print(f"wrote {len(texts)} questions to {args.out_jsonl} and {args.out_txt}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
