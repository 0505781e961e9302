"""Quantize a model with llm-compressor into the compressed-tensors format vLLM loads directly.

    python quantize_awq.py --model model/merged --out model/merged-awq            # AWQ W4A16
    python quantize_awq.py --model model/merged --out model/merged-fp8 --scheme fp8

Schemes: `w4a16` AWQ, 4-bit integer weights (asymmetric, group size 128) with 16-bit
activations; `fp8` FP8 weights and dynamic FP8 activations (no calibration; Hopper's choice);
`w8a8` INT8 weights and activations (SmoothQuant, then GPTQ). `lm_head` stays in full precision.
Calibration rows come from a chat JSONL (`quant.calibration`). This module runs where
llm-compressor is installed, `.venv-quant` (scripts/setup_quant.sh): it cannot share a venv with
vLLM (they pin different compressed-tensors). `quant.cli` hands the work over from the serving
venv, and `quant.verify` checks the result in vLLM.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from qaserve.modeltools.merge import TOKENIZER_GLOBS, MergeError, model_dtype, resolve_source
from qaserve.modeltools.merge import check_output as check
from qaserve.modeltools.quant.calibration import Sample, calibration_samples, stats

log = logging.getLogger(__name__)

IGNORE = ["lm_head"]  # kept in full precision: the tied embedding table is shared with it
DTYPES = ("float16", "bfloat16", "float32")
SCHEMES = {
    "w4a16": "AWQ: int4 weights (asymmetric, group size 128), 16-bit activations",
    "fp8": "FP8 weights (per channel), dynamic per-token FP8 activations; no calibration",
    "w8a8": "INT8 weights (per channel), dynamic per-token INT8 activations; SmoothQuant + GPTQ",
}
CALIBRATED = {"w4a16", "w8a8"}
VERSIONED = ("llmcompressor", "compressed-tensors", "transformers", "torch")


class QuantError(RuntimeError):
    """The quantization cannot run or its result is wrong; the message says why."""


@dataclass
class QuantReport:
    out_dir: Path
    info: dict[str, Any] = field(default_factory=dict)


def recipe(scheme: str) -> list[Any]:
    """llm-compressor modifiers for `scheme` (the recipes its own examples use)."""
    from llmcompressor.modifiers.quantization import QuantizationModifier

    if scheme == "w4a16":
        from llmcompressor.modifiers.transform import AWQModifier

        quant = QuantizationModifier(targets=["Linear"], scheme="W4A16_ASYM", ignore=IGNORE)
        return [AWQModifier(), quant]
    if scheme == "fp8":
        return [QuantizationModifier(targets=["Linear"], scheme="FP8_DYNAMIC", ignore=IGNORE)]
    if scheme == "w8a8":
        from llmcompressor.modifiers.gptq import GPTQModifier
        from llmcompressor.modifiers.transform import SmoothQuantModifier

        gptq = GPTQModifier(targets=["Linear"], scheme="W8A8", ignore=IGNORE)
        return [SmoothQuantModifier(smoothing_strength=0.8), gptq]
    raise QuantError(f"scheme {scheme!r}: choose one of {', '.join(SCHEMES)}")


def allow_cpu_calibration() -> bool:
    """llm-compressor 0.14's AWQ pins cached activations for faster copies to the GPU; with no
    accelerator `pin_memory` raises "Cannot access accelerator device", so skip pinning there."""
    import torch

    if torch.accelerator.is_available():
        return False
    from llmcompressor.pipelines.cache import IntermediatesCache

    def no_pinning(self: Any, batch_index: int, input_names: Any = None) -> None:
        return None

    IntermediatesCache.pin_memory = no_pinning
    return True


def source_dir(model: str) -> Path:
    """A local model directory, or a hub id fetched into (or found in) the local HF cache."""
    try:
        path = resolve_source(model, "model")
    except MergeError as exc:
        raise QuantError(str(exc)) from None
    if not (path / "config.json").is_file():
        raise QuantError(f"model {path} has no config.json: not a model directory")
    return path


def check_output(out: Path, overwrite: bool, model_dir: Path) -> None:
    try:
        check(out, overwrite, (model_dir,))
    except MergeError as exc:
        raise QuantError(str(exc)) from None


def check_request(model: str, out: Path, scheme: str, data: Path, overwrite: bool) -> Path:
    """The cheap checks, done before any heavy import (and before handing over to another venv)."""
    if scheme not in SCHEMES:
        raise QuantError(f"scheme {scheme!r}: choose one of {', '.join(SCHEMES)}")
    model_dir = source_dir(model)
    check_output(out, overwrite, model_dir)
    if scheme in CALIBRATED and not data.is_file():
        raise QuantError(
            f"calibration data {data} not found: {scheme} calibrates on chat rows; pass --data "
            'with a JSONL file of {"messages": [...]} rows (or use --scheme fp8, which needs none)'
        )
    return model_dir


def weight_bytes(model_dir: Path) -> dict[str, int]:
    """Bytes of the safetensors files and of their tensors: embeddings (with lm_head) and the
    rest. Reads only the headers."""
    files = tensors = embeddings = 0
    for path in sorted(model_dir.glob("*.safetensors")):
        files += path.stat().st_size
        with path.open("rb") as handle:
            header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            size = meta["data_offsets"][1] - meta["data_offsets"][0]
            tensors += size
            if "embed_tokens" in name or name.startswith("lm_head"):
                embeddings += size
    return {"files": files, "tensors": tensors, "embeddings": embeddings,
            "layers": tensors - embeddings}  # fmt: skip


def quantize(
    model: str,
    out: Path | str,
    *,
    scheme: str = "w4a16",
    data: Path | str = "data.jsonl",
    num_samples: int = 256,
    max_seq_len: int = 1024,
    seed: int = 0,
    system_prompt: str | None = None,
    dtype: str | None = None,
    overwrite: bool = False,
) -> QuantReport:
    """Quantize `model` with `scheme` and write the compressed model to `out` (module docstring)."""
    import torch
    from transformers import AutoTokenizer

    started = time.monotonic()
    out, data = Path(out).expanduser(), Path(data).expanduser()
    model_dir = check_request(model, out, scheme, data, overwrite)
    dtype = dtype or model_dtype(model_dir)
    if dtype not in DTYPES:
        raise QuantError(f"dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    samples: list[Sample] = []
    if scheme in CALIBRATED:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        samples = calibration_samples(tokenizer, data, num_samples=num_samples,
                                      max_seq_len=max_seq_len, seed=seed,
                                      system_prompt=system_prompt)  # fmt: skip
    tmp = out.parent / f".{out.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        log.info("stage 1/3: loading %s (%s)", model_dir, dtype)
        loaded = _load(model_dir, getattr(torch, dtype))
        log.info("stage 2/3: %s: %s", scheme, SCHEMES[scheme])
        seen, patched = _run_oneshot(loaded, scheme, samples, max_seq_len)
        log.info("stage 3/3: writing %s", out)
        _save(loaded, model_dir, tmp)
        info = _info(model, model_dir, tmp, scheme, dtype)
        info["cpu_pin_memory_patch"] = patched
        if samples:
            asked = {"data": str(data), "seed": seed, "num_samples": num_samples}
            info["calibration"] = {**asked, "max_seq_len": max_seq_len, **stats(samples)}
            info["calibration"]["seen"] = seen
        info["seconds"] = round(time.monotonic() - started, 1)
        _write_info(tmp, info)
        check_output(out, overwrite, model_dir)  # still true after the work
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote %s (%s) in %.1f s", out, scheme, info["seconds"])
    return QuantReport(out, info)


def _load(model_dir: Path, torch_dtype: Any) -> Any:
    from transformers import AutoModelForCausalLM

    auto: Any = AutoModelForCausalLM
    return auto.from_pretrained(model_dir, dtype=torch_dtype).eval()


def _run_oneshot(
    model: Any, scheme: str, samples: list[Sample], max_seq_len: int
) -> tuple[dict[str, int], bool]:
    """Run llm-compressor; count what the embedding layer really saw (samples, longest)."""
    from llmcompressor import oneshot

    patched = allow_cpu_calibration()
    if patched:
        log.info("no accelerator: calibrating on the CPU (activation pinning skipped)")
    seen: set[int] = set()
    longest = [0]

    def watch(module: Any, inputs: tuple[Any, ...], output: Any) -> None:
        ids = inputs[0]
        if ids.device.type != "meta":  # tracing passes carry no values
            seen.add(hash(tuple(ids.flatten().tolist())))
            longest[0] = max(longest[0], int(ids.shape[-1]))

    hook = model.get_input_embeddings().register_forward_hook(watch)
    try:
        oneshot(model=model, recipe=recipe(scheme), **_dataset_args(samples, max_seq_len))
    finally:
        hook.remove()
    return {"distinct_samples": len(seen), "max_tokens": longest[0]}, patched


def _dataset_args(samples: list[Sample], max_seq_len: int) -> dict[str, Any]:
    if not samples:
        return {}
    import hashlib

    import pyarrow as pa
    from datasets import Dataset
    from datasets.table import InMemoryTable

    ids = [s.input_ids for s in samples]
    table = pa.table({"input_ids": ids, "attention_mask": [[1] * len(i) for i in ids]})
    # our own fingerprint: datasets' default one pickles the arrow table with dill, which
    # fails on Python 3.12 with pyarrow 26 ("Can't pickle <class 'MonthDayNano'>")
    digest = hashlib.sha256(repr(ids).encode()).hexdigest()[:16]
    dataset = Dataset(InMemoryTable(table), fingerprint=f"calibration-{digest}")
    # already sampled, rendered and cut here: llm-compressor takes them all, in order
    return {"dataset": dataset, "num_calibration_samples": len(samples),
            "max_seq_length": max_seq_len, "shuffle_calibration_samples": False}  # fmt: skip


def _save(model: Any, model_dir: Path, out: Path) -> None:
    model.save_pretrained(out, save_compressed=True)
    copied = sorted({p.name for g in TOKENIZER_GLOBS for p in model_dir.glob(g) if p.is_file()})
    if not copied:
        raise QuantError(f"no tokenizer files in {model_dir}")
    for name in copied:
        shutil.copy2(model_dir / name, out / name)
    if (model_dir / "generation_config.json").is_file():  # verbatim, as the source has it
        shutil.copy2(model_dir / "generation_config.json", out / "generation_config.json")
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    if "quantization_config" not in config:
        raise QuantError("llm-compressor wrote no quantization_config: the output is not quantized")


def _info(model: str, model_dir: Path, out: Path, scheme: str, dtype: str) -> dict[str, Any]:
    from importlib.metadata import version

    import torch

    quant = json.loads((out / "config.json").read_text(encoding="utf-8"))["quantization_config"]
    source, written = weight_bytes(model_dir), weight_bytes(out)
    device = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else "cpu"
    return {
        "source": model,
        "scheme": scheme,
        "description": SCHEMES[scheme],
        "format": quant.get("format"),
        "ignore": quant.get("ignore", IGNORE),
        "dtype": dtype,
        "device": str(device),
        "sizes": {
            "source": source,
            "output": written,
            "ratio": round(written["tensors"] / max(source["tensors"], 1), 4),
            "layers_ratio": round(written["layers"] / max(source["layers"], 1), 4),
        },
        "versions": {name: version(name) for name in VERSIONED},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _write_info(out: Path, info: dict[str, Any]) -> None:
    text = json.dumps(info, ensure_ascii=False, indent=2) + "\n"
    (out / "quant_info.json").write_text(text, encoding="utf-8")


def read_info(out: Path) -> dict[str, Any]:
    path = out / "quant_info.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
