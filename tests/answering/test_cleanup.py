"""Answer cleanup: think blocks, leaked special tokens, whitespace outside code fences.

pytest tests/answering/test_cleanup.py -q
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qaserve.answering.cleanup import clean_answer, remove_special_tokens, strip_think, trim

TAGS = ("<think>", "</think>", "<|im_end|>", "<|im_start|>", "<|endoftext|>")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<think>reasoning</think>answer", "answer"),
        ("a<think>x</think>b<think>y\nz</think>c", "abc"),
        ("reasoning only the prompt opened</think>\n\nanswer", "\n\nanswer"),
        ("r1</think>a<think>r2</think>b", "ab"),
        ("x</think>y</think>z", "z"),
        ("answer<think>never closed", "answer"),
        ("<think>\n\n</think>\n\n答案", "\n\n答案"),
        ("<think>a<think>b</think>c</think>d", "d"),
        ("no tags at all", "no tags at all"),
        ("", ""),
    ],
)
def test_strip_think(raw: str, expected: str) -> None:
    assert strip_think(raw) == expected


def test_remove_special_tokens() -> None:
    assert remove_special_tokens("SIMT<|im_end|>") == "SIMT"
    assert remove_special_tokens("<|im_start|>assistant\nok<|endoftext|>") == "assistant\nok"
    assert remove_special_tokens("<|im_<|im_end|>end|>x") == "x"  # removal can form another one
    assert remove_special_tokens("<|other|>") == "<|other|>"


def test_trim_outside_fences() -> None:
    block = "```python\ndef f():  \n\n\n\n    return 1\t\n```"
    raw = f"  \n标题  \t\n\n\n\n正文 \n{block}\n\n\n\n尾  \n\n"
    assert trim(raw) == f"标题\n\n正文\n{block}\n\n尾"


def test_trim_keeps_unclosed_fence_tail() -> None:
    raw = "代码：  \n```cuda\n__global__ void k() {\n    \n\n\n\n"
    assert trim(raw) == "代码：\n```cuda\n__global__ void k() {\n    \n\n\n\n"


def test_trim_keeps_inline_spaces_before_fence() -> None:
    assert trim("use ```x```   then") == "use ```x```   then"


def test_trim_whitespace_only() -> None:
    assert trim(" \n\t\n ") == ""


def test_clean_answer() -> None:
    raw = "<think>\n\n</think>\n\nCUDA 是 NVIDIA 的并行计算平台。  \n\n\n<|im_end|>"
    assert clean_answer(raw, trim_whitespace=True) == "CUDA 是 NVIDIA 的并行计算平台。"
    assert clean_answer(raw, trim_whitespace=False) == "\n\nCUDA 是 NVIDIA 的并行计算平台。  \n\n\n"


def test_clean_answer_special_token_forming_think_tag() -> None:
    assert clean_answer("a<thi<|im_end|>nk>b", trim_whitespace=False) == "a"


# --- properties ---------------------------------------------------------------------------

_LETTERS = "ab xyz\n\t \u3000标题的代码_{}();=*/|>#"
prose = st.text(alphabet=_LETTERS, max_size=30)  # no "<" and no "`": cannot form tags or fences
_CODE_PIECES = st.sampled_from(["  \n", "\t\n", "\n\n\n\n", "    ", "x<y", "\r\n", "`"])
code = (
    st.lists(st.one_of(_CODE_PIECES, st.text(alphabet=_LETTERS, max_size=8)), max_size=8)
    .map("".join)
    .filter(lambda s: "```" not in s and not s.endswith("`") and not any(t in s for t in TAGS))
)
fenced = code.map(lambda c: f"```{c}```")
think = st.lists(st.one_of(prose, fenced), max_size=3).map(
    lambda p: "<think>" + "".join(p) + "</think>"
)
special = st.sampled_from(TAGS[2:])


@st.composite
def answers(draw: st.DrawFn) -> tuple[str, list[str]]:
    """An answer built from parts, and the code blocks (their insides) that must survive."""
    kept: list[str] = []
    text = ""
    if draw(st.booleans()):  # Qwen3: the reasoning's opening tag was in the prompt
        text += draw(st.lists(st.one_of(prose, fenced), max_size=2).map("".join)) + "</think>"
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["prose", "code", "think", "special"]))
        if kind == "code":
            inside = draw(code)
            kept.append(inside)
            text += f"```{inside}```"
        elif kind == "think":
            text += draw(think)
        elif kind == "special":
            text += draw(special)
        else:
            text += draw(prose)
    return text, kept


def _inside_fences(text: str) -> list[str]:
    return text.split("```")[1::2]


@given(answers(), st.booleans())
def test_code_blocks_survive_byte_identical(answer: tuple[str, list[str]], do_trim: bool) -> None:
    text, kept = answer
    assert _inside_fences(clean_answer(text, trim_whitespace=do_trim)) == kept


@given(st.one_of(st.text(), answers().map(lambda a: a[0])), st.booleans())
def test_never_longer(text: str, do_trim: bool) -> None:
    assert len(clean_answer(text, trim_whitespace=do_trim)) <= len(text)
    assert len(trim(text)) <= len(text)
    assert len(strip_think(text)) <= len(text)
    assert len(remove_special_tokens(text)) <= len(text)


@given(st.one_of(st.text(), answers().map(lambda a: a[0])), st.booleans())
def test_idempotent(text: str, do_trim: bool) -> None:
    once = clean_answer(text, trim_whitespace=do_trim)
    assert clean_answer(once, trim_whitespace=do_trim) == once
    assert trim(trim(text)) == trim(text)
    assert strip_think(strip_think(text)) == strip_think(text)


@given(st.one_of(st.text(), answers().map(lambda a: a[0])))
def test_no_tags_left(text: str) -> None:
    cleaned = clean_answer(text, trim_whitespace=True)
    assert not any(tag in cleaned for tag in TAGS)
