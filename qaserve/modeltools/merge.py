"""Merge a LoRA/PEFT adapter into its base model, write a complete model directory, verify it.

    python merge_adapter.py --base model/Qwen2.5-0.5B-Instruct --adapter runs/lora \
        --out model/merged --dtype bfloat16

The merge runs in float32 (peft `merge_and_unload`), then the weights are cast to `--dtype`.
Verification (on by default) checks two things on a few chat-rendered PMPP questions:
the merge itself, base+adapter against the merged weights, both in float64 (exact up to
rounding, so the tolerance is absolute and every argmax must agree), and the written directory
loaded from disk and run in its saved dtype against that float64 reference (relative tolerance
per dtype). The output only appears once everything passed.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from qaserve.answering.prompts import PromptBuilder
from qaserve.defaults import DEFAULT_SYSTEM_PROMPT
from qaserve.modeltools.sources import SourceError, add_predecessor_flags, resolve_predecessor_args

log = logging.getLogger(__name__)

DTYPES = ("float16", "bfloat16", "float32")
# written model in its dtype vs the float64 merge, max |diff| / max |logit| per position.
# Measured: random Qwen2.5-0.5B-shaped model fp32 1.7e-6, fp16 3.3e-3, bf16 2.5e-2; the tiny
# test model 4e-6, 2.2e-2, 9.3e-2 (its large random weights amplify rounding)
DTYPE_TOLERANCE = {"float32": 1e-4, "float16": 5e-2, "bfloat16": 2e-1}
# tokenizer files, copied verbatim from the base (or from the adapter if it ships its own)
TOKENIZER_GLOBS = ("tokenizer*", "vocab.*", "merges.txt", "*.tiktoken", "chat_template.*",
                   "special_tokens_map.json", "added_tokens.json")  # fmt: skip
SAMPLE_QUESTIONS = (
    "什么是CUDA中的warp？",
    "Explain memory coalescing in one paragraph.",
    "共享内存（shared memory）和全局内存有什么区别？",
    "Why does tiling reduce global memory traffic in matrix multiplication?",
    "请解释__syncthreads()的作用。",
    "What is occupancy, and how do registers per thread limit it?",
    "并行归约（parallel reduction）中如何避免控制发散？",
    "Write a CUDA kernel that adds two vectors.",
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class MergeError(RuntimeError):
    """The merge cannot run or its result is wrong; the message says why."""


class VerificationError(MergeError):
    """The merged model does not reproduce base+adapter; `report` holds the figures."""

    def __init__(self, message: str, report: MergeReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class Comparison:
    """Logits of one model against a reference on the sample prompts."""

    name: str
    compute_dtype: str
    max_abs: float
    max_rel: float  # per position: max |diff| / max |reference logit|
    argmax_agree: float  # fraction of positions whose greedy token is the reference's
    positions: int
    tolerance: float
    tolerance_kind: str  # "abs" (and every argmax must agree) or "rel"

    @property
    def passed(self) -> bool:
        if self.tolerance_kind == "abs":
            return self.max_abs <= self.tolerance and self.argmax_agree == 1.0
        return self.max_rel <= self.tolerance


@dataclass
class MergeReport:
    out_dir: Path
    base: str
    adapter: str
    dtype: str
    comparisons: list[Comparison] = field(default_factory=list)
    seconds: float = 0.0

    def info(self) -> dict[str, Any]:
        """What `merge_info.json` records."""
        import peft
        import torch
        import transformers

        return {
            "base": self.base,
            "adapter": self.adapter,
            "dtype": self.dtype,
            "merge_dtype": "float32",
            "verified": bool(self.comparisons) and all(c.passed for c in self.comparisons),
            "verification": [asdict(c) | {"passed": c.passed} for c in self.comparisons],
            "versions": {m.__name__: m.__version__ for m in (peft, transformers, torch)},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }


def resolve_source(name: str, what: str) -> Path:
    """A local directory, or a Hugging Face hub id fetched into (or found in) the local cache."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise MergeError(f"{what} {name!r} is a file, not a model directory")
    if not _HUB_ID.match(name):
        raise MergeError(f"{what} {name!r}: no such directory (and not a hub id like org/name)")
    from huggingface_hub import snapshot_download

    try:  # offline (HF_HUB_OFFLINE=1 or no network) this only looks in the local cache
        return Path(snapshot_download(repo_id=name))
    except Exception as exc:
        raise MergeError(
            f"{what} {name!r}: no such directory, and the hub id could not be fetched or "
            f"found in the local Hugging Face cache ({type(exc).__name__}: {exc})"
        ) from None


def model_dtype(base_dir: Path) -> str:
    """The dtype the base model's config.json declares (float32 when it declares none)."""
    config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    declared = config.get("dtype") or config.get("torch_dtype") or "float32"
    return declared if declared in DTYPES else "float32"


def check_inputs(base_dir: Path, adapter_dir: Path) -> None:
    if not (base_dir / "config.json").is_file():
        raise MergeError(f"base {base_dir} has no config.json: not a model directory")
    if not (adapter_dir / "adapter_config.json").is_file():
        raise MergeError(f"adapter {adapter_dir} has no adapter_config.json: not a PEFT adapter")


def check_output(out: Path, overwrite: bool, inputs: tuple[Path, ...]) -> None:
    """Refuse an output that would destroy an input, or a non-empty one without `overwrite`."""
    target = out.resolve()
    for src in inputs:
        if target == src.resolve() or target in src.resolve().parents:
            raise MergeError(f"output {out} would overwrite the input {src}")
    if out.exists() and not out.is_dir():
        raise MergeError(f"output {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise MergeError(f"output {out} exists and is not empty: pass --overwrite to replace it")


def merge_adapter(
    base: str,
    adapter: str,
    out: Path | str,
    *,
    dtype: str | None = None,
    overwrite: bool = False,
    verify: bool = True,
    prompts: int = 4,
    tolerance: float = 1e-6,
    dtype_tolerance: float | None = None,
) -> MergeReport:
    """Merge `adapter` into `base` and write the model to `out` (see the module docstring)."""
    started = time.monotonic()
    out = Path(out).expanduser()
    if dtype is not None and dtype not in DTYPES:
        raise MergeError(f"dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    if not 1 <= prompts <= len(SAMPLE_QUESTIONS):
        raise MergeError(f"prompts must be between 1 and {len(SAMPLE_QUESTIONS)}")
    base_dir, adapter_dir = resolve_source(base, "base"), resolve_source(adapter, "adapter")
    check_inputs(base_dir, adapter_dir)
    check_output(out, overwrite, (base_dir, adapter_dir))
    dtype = dtype or model_dtype(base_dir)
    report = MergeReport(out, base, adapter, dtype)
    tmp = out.parent / f".{out.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_merged(base_dir, adapter_dir, tmp, dtype)
        if verify:
            report.comparisons = verify_merge(
                base_dir, adapter_dir, tmp, dtype, prompts, tolerance, dtype_tolerance
            )
        report.seconds = time.monotonic() - started
        (tmp / "merge_info.json").write_text(
            json.dumps(report.info(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        failed = [c.name for c in report.comparisons if not c.passed]
        if failed:
            raise VerificationError(
                f"verification failed ({'; '.join(failed)}): the merged model does not "
                f"reproduce base+adapter; nothing was written to {out}",
                report,
            )
        check_output(out, overwrite, (base_dir, adapter_dir))  # still true after the work
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote %s (%s) in %.1f s", out, dtype, report.seconds)
    return report


def _load_model(model_dir: Path, torch_dtype: Any) -> Any:
    from transformers import AutoModelForCausalLM

    auto: Any = AutoModelForCausalLM
    try:  # transformers >= 4.56 calls it `dtype`
        model = auto.from_pretrained(model_dir, dtype=torch_dtype)
    except TypeError:  # pragma: no cover - older transformers (vLLM 0.10 images)
        model = auto.from_pretrained(model_dir, torch_dtype=torch_dtype)
    return model.to(torch_dtype).eval()


def _load_peft(base_dir: Path, adapter_dir: Path, torch_dtype: Any) -> Any:
    from peft import PeftModel

    model = _load_model(base_dir, torch_dtype)
    try:
        peft_model = PeftModel.from_pretrained(model, adapter_dir)
    except Exception as exc:
        raise MergeError(
            f"adapter {adapter_dir} does not load onto base {base_dir}: {type(exc).__name__}: {exc}"
        ) from None
    return peft_model.to(torch_dtype).eval()  # adapter weights too: "cast both"


def _merged(peft_model: Any) -> Any:
    if not hasattr(peft_model, "merge_and_unload"):
        kind = peft_model.peft_config["default"].peft_type
        raise MergeError(f"a {kind} adapter cannot be merged into the weights")
    return peft_model.merge_and_unload()


def write_merged(base_dir: Path, adapter_dir: Path, out: Path, dtype: str) -> None:
    """Merge in float32, cast to `dtype`, save weights, configs and the tokenizer to `out`."""
    import torch

    log.info("loading base %s and adapter %s (float32)", base_dir, adapter_dir)
    model = _merged(_load_peft(base_dir, adapter_dir, torch.float32))
    log.info("merged; writing %s weights to %s", dtype, out)
    model.to(getattr(torch, dtype)).save_pretrained(out, safe_serialization=True)
    source = adapter_dir if _has_tokenizer(adapter_dir) else base_dir
    copied = sorted({p.name for g in TOKENIZER_GLOBS for p in source.glob(g) if p.is_file()})
    if not copied:
        raise MergeError(f"no tokenizer files in {base_dir} or {adapter_dir}")
    for name in copied:
        shutil.copy2(source / name, out / name)
    log.info("tokenizer from %s: %s", source, ", ".join(copied))
    for name in ("config.json", "generation_config.json"):
        if not (out / name).is_file():
            raise MergeError(f"transformers did not write {name} for this model")


def _has_tokenizer(path: Path) -> bool:
    return (path / "tokenizer_config.json").is_file() or (path / "tokenizer.json").is_file()


def sample_prompts(model_dir: Path, count: int) -> list[list[int]]:
    """Token ids of the first `count` sample questions, rendered as the server renders them."""
    from transformers import AutoTokenizer

    builder = PromptBuilder(AutoTokenizer.from_pretrained(model_dir), "auto")
    questions = list(SAMPLE_QUESTIONS[:count])
    built = builder.question_prompts(DEFAULT_SYSTEM_PROMPT, questions, [4096] * count)
    return [p.token_ids for p in built]


def prompt_logits(model: Any, prompts: list[list[int]]) -> list[Any]:
    """Float64 logits at every position of each prompt (one prompt at a time: no padding)."""
    import torch

    with torch.no_grad():
        return [model(torch.tensor([ids])).logits[0].to(torch.float64) for ids in prompts]


def compare(
    name: str, dtype: str, got: list[Any], ref: list[Any], tolerance: float, kind: str
) -> Comparison:
    import torch

    diff = [(g - r).abs() for g, r in zip(got, ref, strict=True)]
    rel = [d.amax(-1) / r.abs().amax(-1).clamp_min(1e-30) for d, r in zip(diff, ref, strict=True)]
    agree = sum(int((g.argmax(-1) == r.argmax(-1)).sum()) for g, r in zip(got, ref, strict=True))
    positions = sum(len(r) for r in ref)
    max_abs = float(torch.stack([d.max() for d in diff]).max())
    max_rel = float(torch.stack([r.max() for r in rel]).max())
    return Comparison(name, dtype, max_abs, max_rel, agree / positions, positions, tolerance, kind)


def verify_merge(
    base_dir: Path,
    adapter_dir: Path,
    out: Path,
    dtype: str,
    prompts: int,
    tolerance: float,
    dtype_tolerance: float | None,
) -> list[Comparison]:
    """Base+adapter vs merged (both float64), then the written model vs the float64 merge."""
    import gc

    import torch

    gc.collect()  # the float32 merge's reference cycles: free it before loading float64
    ids = sample_prompts(out, prompts)
    log.info("verifying on %d prompts: base+adapter in float64", len(ids))
    peft_model = _load_peft(base_dir, adapter_dir, torch.float64)
    reference = prompt_logits(peft_model, ids)
    log.info("verifying: merged weights in float64")
    merged64 = prompt_logits(_merged(peft_model), ids)
    del peft_model
    gc.collect()
    merge_check = compare("peft merge", "float64", merged64, reference, tolerance, "abs")
    log.info("verifying: the written model in %s", dtype)
    written = _load_model(out, getattr(torch, dtype))
    tol = DTYPE_TOLERANCE[dtype] if dtype_tolerance is None else dtype_tolerance
    got = prompt_logits(written, ids)
    return [merge_check, compare("written model", dtype, got, merged64, tol, "rel")]


def summary_table(report: MergeReport) -> Any:
    from rich.table import Table

    table = Table(caption="peft merge: merged vs base+adapter, both float64; written model: "
                  "the output directory run in its dtype vs the float64 merge")  # fmt: skip
    for column in ("check", "dtype", "max abs", "max rel", "argmax agree", "limit", "result"):
        table.add_column(column)
    for c in report.comparisons:
        limit = f"{c.tolerance_kind} {c.tolerance:g}{' + argmax' * (c.tolerance_kind == 'abs')}"
        agree = f"{c.argmax_agree:.1%} of {c.positions}"
        figures = (f"{c.max_abs:.3g}", f"{c.max_rel:.3g}", agree, limit)
        table.add_row(c.name, c.compute_dtype, *figures, "ok" if c.passed else "FAILED")
    return table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Merge a LoRA/PEFT adapter into its base model and verify the result.",
        epilog="Example: python merge_adapter.py --base model/Qwen2.5-0.5B-Instruct "
        "--adapter runs/lora --out model/merged --dtype bfloat16",
    )
    add = parser.add_argument
    # fmt: off
    add("--base", help="base model: local directory or Hugging Face hub id")
    add("--adapter", help="PEFT adapter: local directory or hub id")
    add("--out", type=Path, help="directory to write the merged model to")
    add("--dtype", choices=DTYPES, default=None, help="weights dtype (default: the base's)")
    add("--overwrite", action="store_true", help="replace a non-empty output directory")
    add("--verify", action=argparse.BooleanOptionalAction, default=True,
        help="check the merge in float64 and the written model (default: on)")
    add("--no_verify", dest="verify", action="store_false", help=argparse.SUPPRESS)
    add("--prompts", type=int, default=4, help=f"verification prompts, 1-{len(SAMPLE_QUESTIONS)}")
    add("--tolerance", type=float, default=1e-6,
        help="max absolute logit difference, float64 merge check (default 1e-6)")
    add("--dtype-tolerance", "--dtype_tolerance", type=float, default=None,
        help="max relative logit difference, written model in its dtype (default: "
        + ", ".join(f"{k} {v:g}" for k, v in DTYPE_TOLERANCE.items()) + ")")
    # fmt: on
    add_predecessor_flags(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    parser = build_parser()
    args = parser.parse_args(argv)
    console = Console()
    try:
        resolve_predecessor_args(args)
        missing = [f"--{k}" for k in ("base", "adapter", "out") if not getattr(args, k)]
        if missing:
            parser.error(f"{', '.join(missing)} required (or the predecessor's flags)")
        report = merge_adapter(**vars(args))
    except VerificationError as exc:
        console.print(summary_table(exc.report))
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (MergeError, SourceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if report.comparisons:
        console.print(summary_table(report))
    else:
        print("not verified (--no-verify)")
    print(f"merged model written to {report.out_dir} ({report.dtype}, {report.seconds:.1f} s)")
    return 0
