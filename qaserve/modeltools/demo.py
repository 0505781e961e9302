"""Train the bundled demo model: a small Qwen2 from scratch on `data.jsonl`, with its own tokenizer.

    python train_demo_model.py --out demo_model              # on a GPU: a few minutes
    python train_demo_model.py --out /tmp/d --steps 20 --hidden 64 --layers 1   # pipeline check

The tokenizer is a byte-level BPE trained on the training data (never the held-out set) that
carries Qwen's chat special tokens and a ChatML template, so the server renders prompts exactly
as training did. Each step samples question/answer pairs with a random prompt variant (prefix
such as `简答：`, and system prompt or none); the loss covers the answer and its `<|im_end|>`.
Writes a standard Hugging Face directory (bf16 safetensors) that vLLM and transformers load,
plus `train_log.jsonl` (loss per step, held-out loss) and `demo_model.json` (how it was made).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qaserve.answering.prompts import PromptBuilder
from qaserve.defaults import DEFAULT_SYSTEM_PROMPT
from qaserve.questions import QA, jsonl_rows, load_questions

log = logging.getLogger(__name__)
ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
DEMO_MARKER = "demo_model.json"  # written into the directory so /info can say what it is
# ChatML as Qwen2.5 renders it, without Qwen's built-in default system prompt
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# prompt variants a user (or the grader) may put in front of a question
PREFIXES = ("", "", "简答：", "请用一句话回答：", "请简要回答：", "回答下面的问题：", "问题：")
SYSTEMS = (DEFAULT_SYSTEM_PROMPT, DEFAULT_SYSTEM_PROMPT, "", "You are a helpful assistant.")
IGNORE = -100
CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass(frozen=True)
class TrainConfig:
    """Model size and optimisation; the defaults made the shipped demo model."""

    vocab_size: int = 8192
    hidden: int = 256
    layers: int = 6
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 1024
    max_len: int = 640
    steps: int = 3000
    batch: int = 64
    lr: float = 2e-3
    warmup: int = 100
    seed: int = 0
    eval_every: int = 100


def train_tokenizer(texts: list[str], vocab_size: int) -> Any:
    """A byte-level BPE over `texts` with Qwen's chat special tokens and a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.normalizer = normalizers.NFC()
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[ENDOFTEXT, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        additional_special_tokens=[IM_START, IM_END],
        model_max_length=4096,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def example_ids(builder: PromptBuilder, system: str, question: str, answer: str) -> tuple:
    """Token ids of one rendered exchange and its labels (answer + `<|im_end|>` only)."""
    tokenizer = builder.tokenizer
    prompt = builder.render(builder.messages_for(system, question))
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer + IM_END + "\n", add_special_tokens=False)["input_ids"]
    return prompt_ids + answer_ids, [IGNORE] * len(prompt_ids) + answer_ids


@dataclass(frozen=True)
class Pair:
    """One answer and the ways its question is asked (the first is the original)."""

    questions: tuple[str, ...]
    answer: str


def load_pairs(path: Path) -> list[Pair]:
    """Training pairs; a row's optional `question_variants` are other ways to ask it."""
    qas = load_questions(path)
    rows = jsonl_rows(path.read_text(encoding="utf-8"), str(path))
    return [
        Pair((qa.question, *obj.get("question_variants", [])), qa.answer)
        for qa, (_, obj) in zip(qas, rows, strict=True)
    ]


def noisy(rng: random.Random, question: str) -> str:
    """Sometimes drop Chinese characters and the final punctuation, keeping the English terms,
    so the model keys on what a paraphrase keeps rather than on exact wording."""
    if rng.random() < 0.3:
        question = "".join(c for c in question if not (CJK.match(c) and rng.random() < 0.2))
    if rng.random() < 0.3:
        question = question.rstrip("？?。.")
    return question or "?"


def variant(rng: random.Random, pair: Pair) -> tuple[str, str, str]:
    """(system, question, answer): a random system prompt, phrasing, noise and prefix."""
    question = noisy(rng, rng.choice(pair.questions))
    return rng.choice(SYSTEMS), rng.choice(PREFIXES) + question, pair.answer


def batches(
    builder: PromptBuilder, pairs: list[Pair], config: TrainConfig
) -> Iterator[tuple[list, list]]:
    """Endless batches of (ids, labels) lists, drawn with the config's seed."""
    rng = random.Random(config.seed)
    cache: dict[tuple[str, str, str], tuple] = {}  # rendering costs more than a GPU step
    while True:
        chosen = [variant(rng, rng.choice(pairs)) for _ in range(config.batch)]
        rows = []
        for key in chosen:
            if key not in cache:
                cache[key] = example_ids(builder, *key)
            rows.append(cache[key])
        yield (
            [ids[: config.max_len] for ids, _ in rows],
            [labels[: config.max_len] for _, labels in rows],
        )


def collate(rows: list[list[int]], labels: list[list[int]], pad_id: int, device: Any) -> tuple:
    """Right-padded tensors: input ids, attention mask, labels."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    target = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, (row, label) in enumerate(zip(rows, labels, strict=True)):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
        target[i, : len(label)] = torch.tensor(label)
    return ids.to(device), mask.to(device), target.to(device)


def build_model(config: TrainConfig, tokenizer: Any) -> Any:
    """A randomly initialised Qwen2ForCausalLM sized by `config` (vocab padded to 64)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    vocab = math.ceil(len(tokenizer) / 64) * 64
    qwen = Qwen2Config(
        vocab_size=vocab,
        hidden_size=config.hidden,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.kv_heads,
        intermediate_size=config.intermediate,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.convert_tokens_to_ids(ENDOFTEXT),
    )
    return Qwen2ForCausalLM(qwen)


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def heldout_loss(model: Any, builder: PromptBuilder, pairs: list[QA], device: Any) -> float:
    """Mean answer-token loss on held-out pairs rendered as the server renders them."""
    import torch

    rows = [example_ids(builder, DEFAULT_SYSTEM_PROMPT, p.question, p.answer) for p in pairs]
    pad = builder.tokenizer.pad_token_id
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad(), _autocast(device):
        for start in range(0, len(rows), 32):
            chunk = rows[start : start + 32]
            ids, mask, target = collate([r for r, _ in chunk], [t for _, t in chunk], pad, device)
            tokens = int((target[:, 1:] != IGNORE).sum())
            total += float(model(input_ids=ids, attention_mask=mask, labels=target).loss) * tokens
            count += tokens
    model.train()
    return total / max(1, count)


def _autocast(device: Any) -> Any:
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _seed_everything(seed: int) -> None:
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def train(
    data: Path, heldout: Path | None, out: Path, config: TrainConfig, overwrite: bool = False
) -> dict[str, Any]:
    """Train tokenizer and model, write the model directory to `out`; return the summary."""
    import torch

    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty (pass --overwrite to replace it)")
    out.mkdir(parents=True, exist_ok=True)
    _seed_everything(config.seed)
    pairs = load_pairs(data)
    held = load_questions(heldout) if heldout else []
    tokenizer = train_tokenizer(_tokenizer_texts(pairs), config.vocab_size)
    builder = PromptBuilder(tokenizer, "auto")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(config, tokenizer).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    started = time.monotonic()
    with (out / "train_log.jsonl").open("w", encoding="utf-8") as log_file:
        for step, (rows, labels) in enumerate(batches(builder, pairs, config)):
            if step == config.steps:
                break
            record = _step(model, optimizer, rows, labels, tokenizer, device, step, config)
            if held and (step % config.eval_every == 0 or step == config.steps - 1):
                record["heldout_loss"] = heldout_loss(model, builder, held, device)
                log.info(
                    "step %d loss %.4f heldout %.4f", step, record["loss"], record["heldout_loss"]
                )
            record["elapsed_s"] = round(time.monotonic() - started, 2)
            log_file.write(json.dumps(record) + "\n")
    summary = _summary(model, config, pairs, held, device, time.monotonic() - started, out)
    _save(model, tokenizer, out, summary)
    return summary


def _step(
    model: Any,
    optimizer: Any,
    rows: list,
    labels: list,
    tokenizer: Any,
    device: Any,
    step: int,
    config: TrainConfig,
) -> dict[str, Any]:
    import torch

    for group in optimizer.param_groups:
        group["lr"] = learning_rate(step, config)
    ids, mask, target = collate(rows, labels, tokenizer.pad_token_id, device)
    with _autocast(device):
        loss = model(input_ids=ids, attention_mask=mask, labels=target).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return {"step": step, "loss": round(float(loss), 5), "lr": optimizer.param_groups[0]["lr"]}


def _tokenizer_texts(pairs: list[Pair]) -> list[str]:
    templates = [DEFAULT_SYSTEM_PROMPT, *PREFIXES, *SYSTEMS, "system user assistant"]
    return [text for p in pairs for text in (*p.questions, p.answer)] + templates


def _summary(
    model: Any, config: TrainConfig, pairs: list, held: list, device: Any, seconds: float, out: Path
) -> dict[str, Any]:
    import torch

    lines = (out / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
    last = json.loads(lines[-1]) if lines else {}
    evals = [json.loads(line) for line in lines if "heldout_loss" in line]
    return {
        "what": "PMPP demo model: a small Qwen2 trained from scratch on data.jsonl",
        "config": asdict(config),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_pairs": len(pairs),
        "question_phrasings": sum(len(p.questions) for p in pairs),
        "heldout_pairs": len(held),
        "final_loss": last.get("loss"),
        "final_heldout_loss": evals[-1]["heldout_loss"] if evals else None,
        "train_seconds": round(seconds, 1),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
    }


def _save(model: Any, tokenizer: Any, out: Path, summary: dict[str, Any]) -> None:
    import torch

    model = model.to("cpu", dtype=torch.bfloat16)
    model.config.dtype = torch.bfloat16
    eos = [tokenizer.convert_tokens_to_ids(IM_END), tokenizer.convert_tokens_to_ids(ENDOFTEXT)]
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = eos[1]
    model.generation_config.do_sample = False
    model.save_pretrained(out, max_shard_size="12MB")
    tokenizer.save_pretrained(out)
    _portable_tokenizer_config(out / "tokenizer_config.json", tokenizer.chat_template)
    (out / DEMO_MARKER).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    for path in out.iterdir():
        path.chmod(0o644)  # transformers writes some files 0600; the model is shared read-only


def _portable_tokenizer_config(path: Path, chat_template: str) -> None:
    """Name a class every transformers since 4.x loads, and keep the template inline too
    (older releases, e.g. in vendor vLLM 0.10 images, ignore chat_template.jinja)."""
    config = json.loads(path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config["chat_template"] = chat_template
    config["additional_special_tokens"] = config.pop("extra_special_tokens", [IM_START, IM_END])
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def plot_loss(log_path: Path, png: Path) -> Path:
    """Training and held-out loss against step, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(
        [r["step"] for r in rows], [r["loss"] for r in rows], lw=0.8, label="train (answer tokens)"
    )
    held = [r for r in rows if "heldout_loss" in r]
    ax.plot(
        [r["step"] for r in held],
        [r["heldout_loss"] for r in held],
        "o-",
        ms=3,
        label="held-out paraphrases",
    )
    ax.set(xlabel="step", ylabel="cross-entropy", yscale="log", title="demo model training")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return png
