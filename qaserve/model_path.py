"""Find the model directory to serve: `MODEL_DIR`, else what `download_model.py` fetched.

python -m qaserve.model_path        # print the directory the server would load
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qaserve.settings import Settings

log = logging.getLogger(__name__)
SMOKE_DIR_NAME = "smoke-tiny-qwen"
WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.pt", "*.gguf")


class ModelNotFoundError(RuntimeError):
    """No loadable model; the message says how to get one."""


def is_model_dir(path: Path) -> bool:
    """A directory with a config.json and at least one weights file."""
    return (path / "config.json").is_file() and any(
        next(path.glob(pattern), None) is not None for pattern in WEIGHT_GLOBS
    )


def _id_variants(model_id: str) -> set[str]:
    # ModelScope stores `Qwen2.5-0.5B` as `Qwen2___5-0___5B` in some releases
    return {model_id, model_id.replace(".", "___")}


def _snapshots(root: Path) -> list[Path]:
    """Snapshot folders under `root`: the default branch first, then the newest."""
    others = sorted(root.glob("*"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [root / "master", root / "main", *others]


def downloaded_dir(cache_dir: Path, model_id: str) -> Path | None:
    """The directory a ModelScope or Hugging Face download of `model_id` left in `cache_dir`."""
    for variant in _id_variants(model_id):
        for candidate in (cache_dir / variant, cache_dir / "models" / variant):
            if is_model_dir(candidate):
                return candidate
        # modelscope >= 1.38 (modelscope-hub): models/{owner}--{name}/snapshots/{revision}
        ms_snapshots = cache_dir / "models" / variant.replace("/", "--") / "snapshots"
        for snapshot in _snapshots(ms_snapshots):
            if is_model_dir(snapshot):
                return snapshot
        hf_snapshots = cache_dir / ("models--" + variant.replace("/", "--")) / "snapshots"
        for snapshot in sorted(hf_snapshots.glob("*"), reverse=True):
            if is_model_dir(snapshot):
                return snapshot
    return None


def resolve_model_dir(settings: Settings) -> Path:
    """MODEL_DIR if it holds a model, else the download of MODEL_ID, else the smoke model
    when allowed; otherwise raise ModelNotFoundError with the way to get one."""
    given = settings.model_dir
    if given is not None and is_model_dir(given):
        return given
    # benchmarks: vLLM's dummy weights need only config.json and the tokenizer
    dummy = settings.engine_extra_args.get("load_format") == "dummy"
    if given is not None and dummy and (given / "config.json").is_file():
        return given
    found = downloaded_dir(settings.model_cache_dir, settings.model_id)
    if found is not None:
        return found
    if settings.smoke_model_fallback:
        return smoke_model_dir(settings.model_cache_dir)
    where = f"MODEL_DIR={settings.model_dir} holds no model; " if settings.model_dir else ""
    raise ModelNotFoundError(
        f"{where}no download of MODEL_ID={settings.model_id} under {settings.model_cache_dir}/. "
        f"Get one with `python download_model.py --model_name {settings.model_id}` (needs "
        "network), point MODEL_DIR at a model directory, or set SMOKE_MODEL_FALLBACK=1 to "
        "serve a tiny random model for smoke tests."
    )


def smoke_model_dir(cache_dir: Path) -> Path:
    """Build (once) and return the tiny random smoke-test model, warning loudly."""
    from qaserve.smoke_model import build_tiny_qwen

    path = cache_dir / SMOKE_DIR_NAME
    if not is_model_dir(path):
        build_tiny_qwen(path)
    log.warning(
        "NO MODEL FOUND: serving the tiny RANDOM smoke-test model at %s. Its answers are "
        "noise. Set MODEL_DIR or download a model before grading.",
        path,
    )
    return path


if __name__ == "__main__":
    from qaserve.settings import get_settings

    print(resolve_model_dir(get_settings()))
