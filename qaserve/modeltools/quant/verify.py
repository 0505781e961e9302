"""Check a quantized model in vLLM: load it the way the server does, greedy-generate on sample
PMPP questions, and compare with the unquantized source run in the same dtype.

    .venv/bin/python -m qaserve.modeltools.quant.verify model/merged-awq --reference model/merged

Reports the weight sizes before/after and how often the greedy answers agree (whole answer,
first token, common prefix); the figures are added to the output's quant_info.json. Engine
options come from the server's settings (DTYPE, VLLM_QUANTIZATION, ... pass through), except
that both models run in the quantized model's dtype unless DTYPE is set, and eagerly.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qaserve.engines import stop_token_ids
from qaserve.engines.vllm import offline_llm
from qaserve.logs import configure_logging
from qaserve.modeltools.merge import SAMPLE_QUESTIONS, sample_prompts
from qaserve.modeltools.quant.compress import QuantError, read_info, source_dir, weight_bytes
from qaserve.settings import load_settings

log = logging.getLogger(__name__)


@dataclass
class Agreement:
    prompts: int
    exact: float  # answers identical, token for token
    first_token: float
    prefix: float  # mean share of the longer answer that both start with


@dataclass
class VerifyReport:
    out_dir: Path
    reference: str
    dtype: str
    max_new_tokens: int
    agreement: Agreement
    sizes: dict[str, dict[str, int]]
    load_seconds: dict[str, float] = field(default_factory=dict)
    answers: list[dict[str, str]] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """The `verification` entry of quant_info.json."""
        fields = asdict(self)
        fields["out_dir"] = str(self.out_dir)
        return fields


def agreement(got: list[list[int]], want: list[list[int]]) -> Agreement:
    def prefix(a: list[int], b: list[int]) -> float:
        pairs = enumerate(zip(a, b, strict=False))  # answers differ in length
        same = next((i for i, (x, y) in pairs if x != y), min(len(a), len(b)))
        return same / max(len(a), len(b), 1)

    pairs = list(zip(got, want, strict=True))
    n = len(pairs)
    return Agreement(
        prompts=n,
        exact=sum(a == b for a, b in pairs) / n,
        first_token=sum(a[:1] == b[:1] for a, b in pairs) / n,
        prefix=sum(prefix(a, b) for a, b in pairs) / n,
    )


def _config_dtype(model_dir: Path) -> str:
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    return str(config.get("dtype") or config.get("torch_dtype") or "bfloat16")


def generate(model_dir: Path, prompts: list[list[int]], max_new_tokens: int, dtype: str) -> Any:
    """(token ids, texts, load seconds) of greedy answers from vLLM, engine built as the
    server builds it (`offline_llm`)."""
    from transformers import AutoTokenizer
    from vllm import SamplingParams

    # a correctness check: no compiled graphs (minutes of warm-up on a CPU)
    overrides: dict[str, Any] = {"model_dir": model_dir, "max_model_len": 2048, "seed": 0,
                                 "enforce_eager": True}  # fmt: skip
    if "DTYPE" not in os.environ:
        overrides["dtype"] = dtype
    settings = load_settings(**overrides)
    started = time.monotonic()
    llm = offline_llm(settings, model_dir)
    loaded = time.monotonic() - started
    stops = stop_token_ids(AutoTokenizer.from_pretrained(model_dir))
    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, stop_token_ids=stops)
    requests: list[Any] = [{"prompt_token_ids": p} for p in prompts]
    outputs = llm.generate(requests, params, use_tqdm=False)
    answers = [list(o.outputs[0].token_ids) for o in outputs]
    texts = [o.outputs[0].text for o in outputs]
    _shutdown(llm)
    return answers, texts, loaded


def _shutdown(llm: Any) -> None:
    """Stop the engine's worker process before the next model loads (vLLM versions differ)."""
    core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
    if core is not None and hasattr(core, "shutdown"):
        core.shutdown()
    del llm
    gc.collect()


def verify(
    out: Path | str,
    reference: str | None = None,
    *,
    prompts: int = 8,
    max_new_tokens: int = 32,
    dtype: str | None = None,
) -> VerifyReport:
    """Greedy answers of `out` vs `reference` (default: the source named in quant_info.json)."""
    out = Path(out)
    if not (out / "config.json").is_file():
        raise QuantError(f"{out} has no config.json: not a model directory")
    reference = reference or read_info(out).get("source")
    if not reference:
        raise QuantError(f"{out} has no quant_info.json naming its source: pass --reference")
    if not 1 <= prompts <= len(SAMPLE_QUESTIONS):
        raise QuantError(f"prompts must be between 1 and {len(SAMPLE_QUESTIONS)}")
    reference_dir = source_dir(reference)
    dtype = dtype or _config_dtype(out)
    ids = sample_prompts(out, prompts)
    log.info("verify 1/2: %s (quantized) in vLLM, %s, %d prompts", out, dtype, len(ids))
    got, texts, load_q = generate(out, ids, max_new_tokens, dtype)
    log.info("verify 2/2: %s (reference) in vLLM, %s", reference_dir, dtype)
    want, ref_texts, load_r = generate(reference_dir, ids, max_new_tokens, dtype)
    return VerifyReport(
        out_dir=out,
        reference=reference,
        dtype=dtype,
        max_new_tokens=max_new_tokens,
        agreement=agreement(got, want),
        sizes={"reference": weight_bytes(reference_dir), "quantized": weight_bytes(out)},
        load_seconds={"quantized": round(load_q, 1), "reference": round(load_r, 1)},
        answers=[{"quantized": a, "reference": b} for a, b in zip(texts, ref_texts, strict=True)],
    )


def record(report: VerifyReport) -> None:
    """Add the figures to the output's quant_info.json."""
    path = report.out_dir / "quant_info.json"
    info = read_info(report.out_dir)
    info["verification"] = report.record()
    path.write_text(json.dumps(info, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def summary(report: VerifyReport) -> str:
    mib = 1 << 20
    ref, got = report.sizes["reference"], report.sizes["quantized"]
    a = report.agreement
    return "\n".join(
        [
            f"vLLM loaded {report.out_dir} ({report.dtype}) in "
            f"{report.load_seconds['quantized']:.1f} s",
            f"weights {ref['tensors'] / mib:.1f} MiB -> {got['tensors'] / mib:.1f} MiB; "
            f"without embeddings {ref['layers'] / mib:.1f} -> {got['layers'] / mib:.1f} MiB",
            f"greedy answers vs the unquantized model on {a.prompts} prompts, "
            f"{report.max_new_tokens} tokens: identical {a.exact:.0%}, first token "
            f"{a.first_token:.0%}, common prefix {a.prefix:.0%}",
        ]
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("out", type=Path, help="the quantized model directory")
    add("--reference", default=None, help="unquantized model (default: quant_info.json source)")
    add("--prompts", type=int, default=8, help="sample questions, 1-8 (default 8)")
    add("--max-new-tokens", "--max_new_tokens", type=int, default=32)
    add("--dtype", default=None, help="both models' dtype (default: the quantized config's)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = verify(args.out, args.reference, prompts=args.prompts,
                        max_new_tokens=args.max_new_tokens, dtype=args.dtype)  # fmt: skip
    except QuantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    record(report)
    print(summary(report))
    return 0


if __name__ == "__main__":
    configure_logging("INFO")
    sys.exit(main())
