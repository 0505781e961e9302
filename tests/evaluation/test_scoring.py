"""The grader's metric reproduced exactly, the CJK-aware RougeL, speed, bootstrap intervals.

pytest -q tests/evaluation/test_scoring.py
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qaserve.evaluation import scoring
from qaserve.evaluation.scoring import (
    Speed,
    bootstrap_interval,
    cjk_rouge_l,
    cjk_tokens,
    grader_rouge_l,
    grader_speed,
    lcs_f1,
    lcs_length,
    main,
    mean,
    score_pairs,
)

ZH = "数据并行性是指将计算任务围绕数据进行重组，使多个独立的计算可并行执行。"


def test_identical_pure_chinese_scores_zero_for_the_grader_and_one_cjk() -> None:
    # rouge_score's default tokenizer keeps only [a-z0-9]+ runs: no Chinese token survives
    assert grader_rouge_l(ZH, ZH) == 0.0
    assert cjk_rouge_l(ZH, ZH) == pytest.approx(1.0)


def test_english_identifier_tokens_alone_decide_the_grader_score() -> None:
    ref = "使用 __syncthreads() 同步 threads in a block"
    pred = "调用 __syncthreads 实现 block 内 threads 同步"
    # grader tokens ([a-z0-9]+ runs, Chinese dropped):
    #   ref  = syncthreads threads in a block   (5)
    #   pred = syncthreads block threads        (3)
    # LCS = 2 (syncthreads threads, or syncthreads block); P = 2/3, R = 2/5
    # F = 2PR/(P+R) = (8/15)/(16/15) = 0.5
    assert grader_rouge_l(ref, pred) == pytest.approx(0.5)
    # CJK tokens ("__", "(", ")" are punctuation, dropped):
    #   ref  = 使用 syncthreads 同步 threads in a block    (7)
    #   pred = 调用 syncthreads 实现 block 内 threads 同步  (7)
    # LCS = 2 (syncthreads + one of threads/同步/block); P = R = 2/7, F = 2/7
    assert cjk_rouge_l(ref, pred) == pytest.approx(2 / 7)


def test_chinese_changes_do_not_move_the_grader_score() -> None:
    assert grader_rouge_l("CUDA 的 warp 有 32 个线程", "warp 包含 32 线程，CUDA") == pytest.approx(
        grader_rouge_l("cuda warp 32", "warp 32 cuda")
    )


def test_grader_lower_cases() -> None:
    assert grader_rouge_l("CUDA Kernel", "cuda kernel") == pytest.approx(1.0)


@pytest.mark.parametrize("ref,pred", [("", "cuda"), ("cuda", ""), ("", ""), ("  \n", "cuda")])
def test_an_empty_side_scores_zero(ref: str, pred: str) -> None:
    assert grader_rouge_l(ref, pred) == 0.0
    assert cjk_rouge_l(ref, pred) == 0.0


def test_hand_computed_lcs_f1() -> None:
    # a b c d vs a c d e: LCS = a c d = 3, P = 3/4, R = 3/4, F = 0.75
    assert lcs_length(list("abcd"), list("acde")) == 3
    assert lcs_f1(list("abcd"), list("acde")) == pytest.approx(0.75)
    # a b vs a b c d e f: LCS 2, P = 2/6, R = 2/2, F = 2*(1/3)*1/(4/3) = 0.5
    assert lcs_f1(list("ab"), list("abcdef")) == pytest.approx(0.5)
    assert lcs_f1(["x"], ["y"]) == 0.0
    assert lcs_f1([], ["y"]) == 0.0


def test_same_letters_as_grader_when_text_is_ascii_words() -> None:
    # a b c d vs a c d e again, through both metrics
    assert grader_rouge_l("a b c d", "a c d e") == pytest.approx(0.75)
    assert cjk_rouge_l("a b c d", "a c d e") == pytest.approx(0.75)


def test_cjk_tokens_drop_space_and_punctuation_and_lower_case() -> None:
    assert cjk_tokens("CUDA 线程，同步。") == ["cuda", "线程", "同步"]


TEXT = st.text(alphabet=st.sampled_from(list("ab cd线程块同步,。 CUDAx1_()")), max_size=40)


@settings(max_examples=80, deadline=None)
@given(TEXT, TEXT)
def test_scores_in_unit_interval_and_symmetric(ref: str, pred: str) -> None:
    for metric in (grader_rouge_l, cjk_rouge_l):
        score = metric(ref, pred)
        assert 0.0 <= score <= 1.0
        # RougeL F1 = 2·LCS/(|ref|+|pred|): symmetric in ref and pred
        assert metric(pred, ref) == pytest.approx(score)


@settings(max_examples=40, deadline=None)
@given(TEXT)
def test_nonempty_text_matches_itself_in_cjk_mode(text: str) -> None:
    expected = 1.0 if cjk_tokens(text) else 0.0
    assert cjk_rouge_l(text, text) == pytest.approx(expected)


def test_speed_is_chars_over_post_seconds() -> None:
    speed = grader_speed(["abc", "线程块", ""], [1.5, 0.5], token_counts=[2, 3, 0])
    assert speed == Speed(chars=6, seconds=2.0, chars_per_s=3.0, tokens=5, tokens_per_s=2.5)
    assert grader_speed(["abcd"], [2.0]).tokens is None
    assert grader_speed(["abcd"], [2.0]).tokens_per_s is None


def test_speed_with_no_time_is_zero_not_an_error() -> None:
    speed = grader_speed(["abc"], [0.0], token_counts=[3])
    assert speed.chars_per_s == 0.0 and speed.tokens_per_s == 0.0
    assert grader_speed([], []).chars_per_s == 0.0


def test_score_pairs_counts_missing_predictions_as_empty() -> None:
    grader, cjk = score_pairs(["cuda kernel", "线程块", "warp"], ["cuda kernel", None, ""])
    assert grader == pytest.approx([1.0, 0.0, 0.0])
    assert cjk == pytest.approx([1.0, 0.0, 0.0])
    with pytest.raises(ValueError):
        score_pairs(["a"], [])


def test_mean() -> None:
    assert mean([]) == 0.0
    assert mean([0.25, 0.75, 0.5]) == pytest.approx(0.5)


def test_cli_prints_both_scores(capsys: pytest.CaptureFixture[str]) -> None:
    main(["a b c d", "a c d e"])
    out = capsys.readouterr().out
    assert "grader RougeL F1: 0.7500" in out and "CJK RougeL F1:    0.7500" in out


def scores(n: int, seed: int = 1) -> list[float]:
    rng = random.Random(seed)  # grader-like: many zeros, the rest spread over (0, 1]
    return [0.0 if rng.random() < 0.3 else rng.random() for _ in range(n)]


@pytest.mark.parametrize("n", [2, 5, 40, 650])
def test_bootstrap_interval_contains_the_mean(n: int) -> None:
    values = scores(n)
    low, high = bootstrap_interval(values)
    assert low <= mean(values) <= high and low < high


def test_bootstrap_interval_is_deterministic_with_its_seed() -> None:
    values = scores(300)
    assert bootstrap_interval(values) == bootstrap_interval(list(values))
    assert bootstrap_interval(values, seed=7) == bootstrap_interval(values, seed=7)
    assert bootstrap_interval(values, seed=7) != bootstrap_interval(values)


def test_bootstrap_interval_narrows_with_more_questions() -> None:
    widths = [(lambda lo_hi: lo_hi[1] - lo_hi[0])(bootstrap_interval(scores(n))) for n in (30, 300)]
    assert widths[1] < widths[0] / 2  # about 1/sqrt(10) as wide
    low, high = bootstrap_interval(scores(300), level=0.5)
    assert high - low < widths[1]  # a lower level: a narrower interval


def test_bootstrap_interval_edge_cases(monkeypatch: pytest.MonkeyPatch) -> None:
    assert bootstrap_interval([]) == (0.0, 0.0)
    assert bootstrap_interval([0.3] * 50) == (0.3, 0.3)
    assert bootstrap_interval([0.0, 1.0]) == (0.0, 1.0)
    values = scores(500)  # drawn in chunks: the same interval whatever the chunk size
    whole = bootstrap_interval(values)
    monkeypatch.setattr(scoring, "BOOTSTRAP_CELLS", 7 * 500)
    assert bootstrap_interval(values) == whole
