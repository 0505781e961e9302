"""The demo-model trainer on a tiny configuration (CPU, seconds), and the shipped demo model's
files.   pytest tests/modeltools/test_demo_train.py -q
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from qaserve.answering.prompts import PromptBuilder
from qaserve.defaults import DEFAULT_SYSTEM_PROMPT
from qaserve.modeltools.demo import (
    DEMO_MARKER,
    IGNORE,
    IM_END,
    Pair,
    TrainConfig,
    example_ids,
    noisy,
    train,
)
from qaserve.modeltools.files import DEMO_MODEL_DIR, is_model_dir

TINY = TrainConfig(
    hidden=64,
    layers=1,
    heads=1,
    kv_heads=1,
    intermediate=128,
    steps=3,
    batch=4,
    eval_every=2,
    vocab_size=600,
)
PAIRS = [
    ("什么是warp？", "warp是SM调度的基本单位，由32个thread组成，按SIMD方式执行同一条指令。"),
    (
        "shared memory有什么用？",
        "shared memory是block内线程共享的片上存储，延迟远低于global memory。",
    ),
    (
        "请写出vecAdd kernel。",
        "```cuda\n__global__ void vecAdd(float* a, float* b, float* c, int n) {}\n```",
    ),
]


def write_pairs(path: Path, variants: bool = True) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for i, (q, a) in enumerate(PAIRS):
            row = {
                "id": f"t{i}",
                "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
            }
            if variants:
                row["question_variants"] = [q.replace("？", "是什么意思？")]
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("demo")
    data = write_pairs(base / "data.jsonl")
    held = write_pairs(base / "held.jsonl", variants=False)
    train(data, held, base / "model", TINY)
    return base


def test_writes_a_model_directory_transformers_loads(trained: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = trained / "model"
    assert is_model_dir(model_dir) and (model_dir / DEMO_MARKER).is_file()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    assert {"<|im_start|>", "<|im_end|>", "<|endoftext|>"} <= set(tokenizer.all_special_tokens)
    assert model.config.vocab_size >= len(tokenizer) and model.config.vocab_size % 64 == 0
    config = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast" and config["chat_template"]
    summary = json.loads((model_dir / DEMO_MARKER).read_text(encoding="utf-8"))
    assert summary["train_pairs"] == 3 and summary["question_phrasings"] == 6


def test_template_renders_as_the_servers_chatml(trained: Path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(trained / "model")
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}]
    template = PromptBuilder(tokenizer, "auto")
    assert template.use_template
    assert template.render(messages) == PromptBuilder(tokenizer, "chatml").render(messages)


def test_only_the_answer_and_its_end_are_learned(trained: Path):
    from transformers import AutoTokenizer

    builder = PromptBuilder(AutoTokenizer.from_pretrained(trained / "model"), "auto")
    ids, labels = example_ids(builder, DEFAULT_SYSTEM_PROMPT, *PAIRS[0])
    learned = [t for t in labels if t != IGNORE]
    assert len(ids) == len(labels) and labels[0] == IGNORE
    assert builder.tokenizer.decode(learned) == PAIRS[0][1] + IM_END + "\n"


def test_same_seed_same_losses(trained: Path, tmp_path: Path):
    train(trained / "data.jsonl", None, tmp_path / "again", TINY)

    def losses(d: Path) -> list[float]:
        lines = (d / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
        return [json.loads(line)["loss"] for line in lines]

    assert losses(tmp_path / "again") == losses(trained / "model")


def test_refuses_to_overwrite(trained: Path):
    with pytest.raises(FileExistsError):
        train(trained / "data.jsonl", None, trained / "model", TINY)


def test_noise_keeps_the_english_terms():
    rng = random.Random(0)
    for _ in range(200):
        question = noisy(rng, "请解释CUDA中warp divergence的代价？")
        assert "CUDA" in question and "warp divergence" in question


def test_variants_are_sampled(tmp_path: Path):
    from qaserve.modeltools.demo import variant

    pair = Pair(("q1", "q2"), "a")
    seen = {variant(random.Random(seed), pair)[1].split("：")[-1] for seed in range(50)}
    assert {"q1", "q2"} <= seen


def test_shipped_demo_model_is_complete_and_small():
    assert is_model_dir(DEMO_MODEL_DIR) and (DEMO_MODEL_DIR / DEMO_MARKER).is_file()
    for name in ("README.md", "loss.png", "train_log.jsonl", "tokenizer.json", "config.json"):
        assert (DEMO_MODEL_DIR / name).is_file(), name
    # every file comes back from the device (16 MiB) and the tree stays light to carry
    sizes = [p.stat().st_size for p in DEMO_MODEL_DIR.iterdir()]
    assert max(sizes) <= 16 * 2**20 and sum(sizes) <= 20 * 2**20
