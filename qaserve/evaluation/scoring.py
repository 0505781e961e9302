"""Scoring answers: the grader's metric reproduced exactly, a CJK-aware RougeL beside it, speed,
and how sure a mean over questions is (a seeded percentile bootstrap).

python -m qaserve.evaluation.scoring "使用 __syncthreads() 同步线程" "调用 __syncthreads 同步"
"""

from __future__ import annotations

import argparse
import logging
import unicodedata
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

GRADER_PASS_LINE = 0.35  # the grader's accuracy floor
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
BOOTSTRAP_CELLS = 4_000_000  # resampled values drawn at once (bounds the memory: 32 MB)


@lru_cache(maxsize=1)
def _jieba() -> Any:
    with warnings.catch_warnings():  # jieba 0.42 imports the deprecated pkg_resources
        warnings.simplefilter("ignore", DeprecationWarning)
        import jieba

    # jieba prints its dictionary-loading chatter on its own stderr handler; keep tools quiet.
    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


@lru_cache(maxsize=1)
def _grader_scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def _is_empty(s: str) -> bool:
    return not s.strip()


def grader_rouge_l(ref: str, pred: str) -> float:
    """The grader's accuracy for one question, bit for bit.

    jieba words joined by spaces, then rouge_score's RougeL F1 with its default tokenizer, which
    lower-cases and keeps only `[a-z0-9]+` runs: Chinese counts for nothing (reproduced on
    purpose). An empty side scores 0.
    """
    if _is_empty(ref) or _is_empty(pred):
        return 0.0
    jieba = _jieba()
    ref_joined = " ".join(jieba.lcut(ref))
    pred_joined = " ".join(jieba.lcut(pred))
    return float(_grader_scorer().score(ref_joined, pred_joined)["rougeL"].fmeasure)


def _is_punct(token: str) -> bool:
    # Unicode punctuation (P*) and symbols (S*): "，", "(", "_", "+", "×" ...
    return all(unicodedata.category(ch)[0] in "PS" for ch in token)


def cjk_tokens(s: str) -> list[str]:
    """jieba words with Chinese kept: whitespace and punctuation tokens dropped, lower-cased."""
    words = _jieba().lcut(s)
    return [w.strip().lower() for w in words if w.strip() and not _is_punct(w.strip())]


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence (one-row dynamic programme)."""
    if len(a) < len(b):
        a, b = b, a
    row = [0] * (len(b) + 1)
    for x in a:
        prev_diag = 0
        for j, y in enumerate(b, start=1):
            up = row[j]
            row[j] = prev_diag + 1 if x == y else max(row[j], row[j - 1])
            prev_diag = up
    return row[-1]


def lcs_f1(ref_tokens: list[str], pred_tokens: list[str]) -> float:
    """RougeL F1 from token lists: P = LCS/|pred|, R = LCS/|ref|, F = 2PR/(P+R)."""
    if not ref_tokens or not pred_tokens:
        return 0.0
    lcs = lcs_length(ref_tokens, pred_tokens)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred_tokens), lcs / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def cjk_rouge_l(ref: str, pred: str) -> float:
    """RougeL F1 over jieba words with Chinese kept (our own LCS, see `cjk_tokens`).

    Shows real answer quality where the grader sees only ASCII terms. An empty side scores 0.
    """
    if _is_empty(ref) or _is_empty(pred):
        return 0.0
    return lcs_f1(cjk_tokens(ref), cjk_tokens(pred))


@dataclass(frozen=True)
class Speed:
    chars: int
    seconds: float
    chars_per_s: float
    tokens: int | None
    tokens_per_s: float | None


def grader_speed(
    answers: list[str], post_seconds: list[float], token_counts: list[int] | None = None
) -> Speed:
    """The grader's speed: Σ len(answer) ÷ Σ wall time of the POST /predict calls (HTTP incl.)."""
    chars = sum(len(a) for a in answers)
    seconds = float(sum(post_seconds))
    tokens = sum(token_counts) if token_counts is not None else None
    return Speed(
        chars=chars,
        seconds=seconds,
        chars_per_s=chars / seconds if seconds > 0 else 0.0,
        tokens=tokens,
        tokens_per_s=(tokens / seconds if seconds > 0 else 0.0) if tokens is not None else None,
    )


def score_pairs(refs: list[str], preds: list[str | None]) -> tuple[list[float], list[float]]:
    """(grader, cjk) scores per item; a missing prediction (None) counts as ""."""
    if len(refs) != len(preds):
        raise ValueError(f"{len(refs)} references but {len(preds)} predictions")
    grader = [grader_rouge_l(r, p or "") for r, p in zip(refs, preds, strict=True)]
    cjk = [cjk_rouge_l(r, p or "") for r, p in zip(refs, preds, strict=True)]
    return grader, cjk


def mean(values: list[float]) -> float:
    """Arithmetic mean; 0.0 for no values (the grader's accuracy over zero questions)."""
    return sum(values) / len(values) if values else 0.0


def bootstrap_interval(
    values: list[float],
    *,
    level: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over questions: `resamples` draws of the same
    number of questions with replacement, seeded (the same scores give the same interval). For
    two runs of the same questions pass the per-question differences (a paired bootstrap).
    (0.0, 0.0) for no values, as `mean` gives 0.0."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return 0.0, 0.0
    if np.all(data == data[0]):  # every resample is the same: no rounding noise around it
        return float(data[0]), float(data[0])
    rng = np.random.default_rng(seed)
    chunk = max(1, BOOTSTRAP_CELLS // data.size)
    means = np.concatenate(
        [
            data[rng.integers(0, data.size, size=(min(chunk, resamples - start), data.size))].mean(
                1
            )
            for start in range(0, resamples, chunk)
        ]
    )
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Score one answer against a reference.")
    parser.add_argument("ref", help="reference answer")
    parser.add_argument("pred", help="predicted answer")
    args = parser.parse_args(argv)
    print(f"grader RougeL F1: {grader_rouge_l(args.ref, args.pred):.4f}")
    print(f"CJK RougeL F1:    {cjk_rouge_l(args.ref, args.pred):.4f}")


if __name__ == "__main__":
    main()
