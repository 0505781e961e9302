"""The `quantize_awq.py` command line: check the request, quantize here or in `.venv-quant`
(llm-compressor), then verify the result where vLLM is (`.venv`).

    python quantize_awq.py --model model/merged --out model/merged-awq --data data.jsonl

From the serving venv (vLLM, no llm-compressor) the same command is run again by
`.venv-quant/bin/python` for the quantization step, then the result is loaded in vLLM here.
`--write-calibration PATH` only writes the rendered calibration samples (any venv).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from qaserve.modeltools.quant.calibration import (
    CalibrationError,
    calibration_samples,
    describe,
    write_samples,
)
from qaserve.modeltools.quant.compress import (
    DTYPES,
    SCHEMES,
    QuantError,
    check_request,
    quantize,
    source_dir,
)
from qaserve.modeltools.quant.verify import main as verify_main
from qaserve.paths import REPO_ROOT as ROOT

log = logging.getLogger(__name__)


QUANT_VENV = ROOT / ".venv-quant"  # llm-compressor (scripts/setup_quant.sh)
SERVE_VENV = ROOT / ".venv"  # vLLM (scripts/setup.sh)


def has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _venv_python(venv: Path) -> Path | None:
    python = venv / "bin" / "python"
    return python if python.is_file() else None


def _in_venv(venv: Path) -> bool:
    import sys

    return Path(sys.prefix).resolve() == venv.resolve()


def _run_in(python: Path, args: list[str]) -> int:
    """Run `python args` with this checkout importable; its output goes to ours."""
    import os
    import subprocess

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    log.info("running in %s: %s", python.parent.parent.name, " ".join(args[:3]))
    return subprocess.run([str(python), *args], env=env).returncode


def quantize_elsewhere(argv: list[str]) -> int:
    """This Python has no llm-compressor: run the same command in .venv-quant (quantize only)."""
    import sys

    python = _venv_python(QUANT_VENV)
    if python is None or _in_venv(QUANT_VENV):
        raise QuantError(
            f"llm-compressor is not installed in {sys.executable}. It needs its own venv "
            "(it pins compressed-tensors 0.19, vLLM another): create it with "
            "`bash scripts/setup_quant.sh` (about 1.5 GB), then run this command again"
        )
    return _run_in(python, [str(ROOT / "quantize_awq.py"), *argv, "--no-verify"])


def verify_step(out: Path, model: str, prompts: int, max_new_tokens: int) -> int:
    """Load the result in vLLM (here, or in .venv) and compare greedy answers with the source."""
    args = [str(out), "--reference", model, "--prompts", str(prompts),
            "--max-new-tokens", str(max_new_tokens)]  # fmt: skip
    if has_module("vllm"):
        return verify_main(args)
    python = _venv_python(SERVE_VENV)
    if python is None or _in_venv(SERVE_VENV):
        print(
            "not verified: no vLLM here; later: "
            f"python -m qaserve.modeltools.quant.verify {' '.join(args)}"
        )
        return 0
    return _run_in(python, ["-m", "qaserve.modeltools.quant.verify", *args])


def build_parser(environ: Any = None) -> Any:
    """Flags; the predecessor's AWQ_MODEL_DIR, AWQ_OUTPUT_DIR and AWQ_CALIB_JSONL are their
    defaults (and its --model_dir/--output_dir spellings are kept)."""
    import argparse
    import os

    env = os.environ if environ is None else environ

    parser = argparse.ArgumentParser(
        description="Quantize a model with llm-compressor (AWQ W4A16, FP8 or INT8 W8A8) into "
        "the compressed-tensors format vLLM loads directly, then check it in vLLM. "
        "llm-compressor runs in its own venv, .venv-quant (bash scripts/setup_quant.sh); "
        "started from another venv, the tool runs the quantization there.",
        epilog="Example: python quantize_awq.py --model model/merged --out model/merged-awq "
        "--data data.jsonl --num-samples 256 --max-seq-len 1024",
    )
    add = parser.add_argument
    # fmt: off
    add("--model", "--model_dir", "--model-dir", required="AWQ_MODEL_DIR" not in env,
        default=env.get("AWQ_MODEL_DIR"),
        help="model to quantize: local directory or Hugging Face hub id (AWQ_MODEL_DIR)")
    add("--out", "--output_dir", "--output-dir", type=Path,
        default=Path(env["AWQ_OUTPUT_DIR"]) if env.get("AWQ_OUTPUT_DIR") else None,
        help="directory to write the quantized model to (AWQ_OUTPUT_DIR)")
    add("--scheme", choices=tuple(SCHEMES), default="w4a16",
        help="; ".join(f"{k}: {v}" for k, v in SCHEMES.items()) + " (default w4a16)")
    add("--data", type=Path, default=Path(env.get("AWQ_CALIB_JSONL") or "data.jsonl"),
        help='calibration rows, chat JSONL {"messages": [...]} or {"text": question} '
        "(AWQ_CALIB_JSONL; default data.jsonl)")
    add("--num-samples", "--num_samples", type=int, default=256,
        help="calibration conversations drawn from --data (default 256)")
    add("--max-seq-len", "--max_seq_len", type=int, default=1024,
        help="calibration tokens per conversation; longer ones are cut (default 1024)")
    add("--seed", type=int, default=0, help="seed of the calibration draw (default 0)")
    add("--system-prompt", "--system_prompt", default=None,
        help="system turn added to rows that have none (default: the server's; '' for none)")
    add("--dtype", choices=DTYPES, default=None,
        help="dtype of the unquantized parts (default: the model's; vLLM on CPU runs w4a16 "
        "in float16/bfloat16 only)")
    add("--overwrite", action="store_true", help="replace a non-empty output directory")
    # the predecessor's: remote code is never run here (models are plain Qwen)
    add("--trust_remote_code", "--no_trust_remote_code", action="store_true",
        help=argparse.SUPPRESS)
    add("--write-calibration", "--write_calibration", type=Path, metavar="PATH",
        help="only write the rendered calibration samples to PATH (JSONL) and exit")
    add("--verify", action=argparse.BooleanOptionalAction, default=True,
        help="load the result in vLLM and compare greedy answers with the source (default on)")
    add("--no_verify", dest="verify", action="store_false", help=argparse.SUPPRESS)
    add("--prompts", type=int, default=8, help="verification prompts, 1-8 (default 8)")
    add("--max-new-tokens", "--max_new_tokens", type=int, default=32,
        help="tokens generated per verification prompt (default 32)")
    # fmt: on
    return parser


def write_calibration(args: Any) -> str:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source_dir(args.model))
    samples = calibration_samples(tokenizer, args.data, num_samples=args.num_samples,
                                  max_seq_len=args.max_seq_len, seed=args.seed,
                                  system_prompt=args.system_prompt)  # fmt: skip
    write_samples(samples, args.write_calibration)
    return f"wrote {describe(samples)} to {args.write_calibration}"


def main(argv: list[str] | None = None) -> int:
    import sys

    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.write_calibration is None and args.out is None:
        parser.error("--out is required (or --write-calibration PATH to only write samples)")
    try:
        if args.write_calibration is not None:
            print(write_calibration(args))
            return 0
        check_request(args.model, args.out, args.scheme, args.data, args.overwrite)
        if not has_module("llmcompressor"):
            code = quantize_elsewhere(argv)
            if code:
                return code
        else:
            keys = ("scheme", "data", "num_samples", "max_seq_len", "seed", "system_prompt",
                    "dtype", "overwrite")  # fmt: skip
            report = quantize(args.model, args.out, **{k: getattr(args, k) for k in keys})
            print(summary(report.info, args.out))
    except (QuantError, CalibrationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.verify:
        return 0
    return verify_step(args.out, args.model, args.prompts, args.max_new_tokens)


def summary(info: dict[str, Any], out: Path) -> str:
    sizes = info["sizes"]
    mib = 1 << 20
    lines = [
        f"quantized {info['source']} -> {out}: {info['scheme']} ({info['format']}), "
        f"{info['seconds']:.1f} s on {info['device']}",
        f"weights {sizes['source']['tensors'] / mib:.1f} MiB -> "
        f"{sizes['output']['tensors'] / mib:.1f} MiB (x{sizes['ratio']:.3f}); "
        f"without embeddings {sizes['source']['layers'] / mib:.1f} -> "
        f"{sizes['output']['layers'] / mib:.1f} MiB (x{sizes['layers_ratio']:.3f})",
    ]
    calibration = info.get("calibration")
    if calibration:
        lines.append(
            f"calibration: {calibration['samples']} samples, {calibration['tokens']} tokens "
            f"(max {calibration['max_tokens']}, {calibration['truncated']} cut); llm-compressor "
            f"ran {calibration['seen']['distinct_samples']} distinct samples, longest "
            f"{calibration['seen']['max_tokens']} tokens"
        )
    return "\n".join(lines)
