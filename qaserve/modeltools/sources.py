"""Where merge_adapter.py's inputs come from in the predecessor's form: the base model by
ModelScope id, the adapter cloned from a git repository (Git LFS files pulled).

    python merge_adapter.py --base_model Qwen/Qwen2.5-0.5B-Instruct \
        --adapter_repo_url https://gitee.com/you/your-lora.git --output_dir ./merged

Flags beat the predecessor's variables (BASE_MODEL, BASE_REVISION, MODEL_CACHE_DIR,
ADAPTER_REPO_URL, ADAPTER_REPO_REF, MERGE_WORK_DIR, MERGED_MODEL_DIR). Unlike the predecessor,
nothing is deleted without asking: an existing output needs --overwrite, and a clone already
in the work directory is updated, not removed.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from qaserve.modeltools.hub import ToolError, fetch

log = logging.getLogger(__name__)
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin", "pytorch_model.bin")
PREDECESSOR_FLAGS = {  # flag: its variable
    "--base_model": "BASE_MODEL",
    "--base_revision": "BASE_REVISION",
    "--cache_dir": "MODEL_CACHE_DIR",
    "--adapter_repo_url": "ADAPTER_REPO_URL",
    "--adapter_ref": "ADAPTER_REPO_REF",
    "--work_dir": "MERGE_WORK_DIR",
    "--output_dir": "MERGED_MODEL_DIR",
}


class SourceError(RuntimeError):
    """A model or adapter that could not be fetched; the message says which and why."""


def add_predecessor_flags(
    parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None
) -> None:
    env = os.environ if environ is None else environ
    group = parser.add_argument_group("the predecessor's flags (and variables)")
    for flag, var in PREDECESSOR_FLAGS.items():
        group.add_argument(
            flag, flag.replace("_", "-"), default=env.get(var) or None, help=f"({var})"
        )


def git(*args: str, cwd: Path | None = None) -> None:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise SourceError(f"git {' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")


def clone_adapter(url: str, ref: str | None, work_dir: Path) -> Path:
    """A shallow clone of `url` (at `ref` when given) under `work_dir`, LFS files pulled."""
    dest = work_dir / (Path(url.rstrip("/")).stem or "adapter")
    if not (dest / ".git").is_dir():
        dest.parent.mkdir(parents=True, exist_ok=True)
        git("clone", "--depth", "1", url, str(dest))
    if ref:
        git("fetch", "--depth", "1", "origin", ref, cwd=dest)
        git("checkout", "FETCH_HEAD", cwd=dest)
    weights = [dest / f for f in ADAPTER_FILES if (dest / f).is_file()]
    if not weights:
        raise SourceError(f"{url}: no {' / '.join(ADAPTER_FILES)} in the repository")
    if any(w.read_bytes()[: len(LFS_POINTER)] == LFS_POINTER for w in weights):
        git("lfs", "pull", cwd=dest)  # the weights are Git LFS pointers
    return dest


def base_source(name: str, revision: str | None, cache_dir: Path) -> str:
    """A local directory as is; otherwise a ModelScope id, downloaded into `cache_dir`."""
    if Path(name).expanduser().is_dir():
        return name
    try:
        return str(fetch(name, revision, source="modelscope", cache_dir=cache_dir))
    except ToolError as exc:
        raise SourceError(f"base model {name}: {exc}") from None


def resolve_predecessor_args(args: argparse.Namespace) -> None:
    """Fill --base/--adapter/--out from the predecessor's flags and variables, in place."""
    if args.base_model and not args.base:
        cache = Path(args.cache_dir or "model")
        args.base = base_source(args.base_model, args.base_revision, cache)
    if args.adapter_repo_url and not args.adapter:
        work = Path(args.work_dir or "merge_work")
        args.adapter = str(clone_adapter(args.adapter_repo_url, args.adapter_ref, work))
    if args.output_dir and not args.out:
        args.out = Path(args.output_dir)
    for name in PREDECESSOR_FLAGS:
        delattr(args, name.lstrip("-"))
