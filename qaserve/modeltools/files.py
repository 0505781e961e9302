"""Find the model directory to serve: `MODEL_DIR`, else what `download_model.py` fetched.

python -m qaserve.modeltools.files        # print the directory the server would load
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from qaserve.modeltools.smoke import build_tiny_qwen
from qaserve.paths import DEMO_MODEL_DIR
from qaserve.settings import Settings, get_settings

log = logging.getLogger(__name__)
SMOKE_DIR_NAME = "smoke-tiny-qwen"
WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.pt", "*.gguf")
SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024  # the format's own limit
CONTEXT_KEYS = (  # config.json keys vLLM reads a context length from
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)


class ModelNotFoundError(RuntimeError):
    """No loadable model; the message says how to get one."""


class CorruptModelError(ModelNotFoundError):
    """The model directory exists but a file in it is damaged (cut download, bad edit)."""


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
    """MODEL_DIR (an error if it holds no model), else the download of MODEL_ID, else (when
    allowed) the smoke model or the bundled demo model; otherwise raise ModelNotFoundError
    saying how to get one."""
    given = settings.model_dir
    if given is not None:  # a model the user named is served or refused, never replaced
        _check_given(given, settings.engine_extra_args.get("load_format") == "dummy")
        return given
    found = downloaded_dir(settings.model_cache_dir, settings.model_id)
    if found is not None:
        return found
    where = f"no download of MODEL_ID={settings.model_id} under {settings.model_cache_dir}/"
    if settings.smoke_model_fallback:
        log.warning("%s", where)
        return smoke_model_dir(settings.model_cache_dir)
    if settings.demo_model_fallback and is_model_dir(DEMO_MODEL_DIR):
        log.warning(
            "%s: serving the bundled PMPP DEMO model at %s (a small model trained on "
            "data.jsonl, see its README.md). Set MODEL_DIR or download your model for grading.",
            where,
            DEMO_MODEL_DIR,
        )
        return DEMO_MODEL_DIR
    raise ModelNotFoundError(
        f"{where}. Get one with `python download_model.py --model_name {settings.model_id}` "
        "(needs network), point MODEL_DIR at a model directory, or set SMOKE_MODEL_FALLBACK=1 "
        "to serve a tiny random model for smoke tests."
    )


def _check_given(path: Path, dummy_weights: bool) -> None:
    """MODEL_DIR must hold a model (vLLM's dummy weights need only config.json)."""
    if not path.is_dir():
        missing = "does not exist" if not path.exists() else "is not a directory"
    elif not (path / "config.json").is_file():
        missing = "has no config.json"
    elif not dummy_weights and not is_model_dir(path):
        missing = f"has no weights ({', '.join(WEIGHT_GLOBS)})"
    else:
        return
    raise ModelNotFoundError(
        f"MODEL_DIR={path} {missing}: point MODEL_DIR at a model directory (config.json, "
        "tokenizer, weights), or unset it to serve the download of MODEL_ID."
    )


def context_length(path: Path) -> int | None:
    """The longest context the model takes, derived from config.json as vLLM derives it (the
    smallest of its length keys, times a rope-scaling factor); None when it says nothing."""
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    config = config.get("text_config", config) if isinstance(config, dict) else {}
    lengths = [config[k] for k in CONTEXT_KEYS if isinstance(config.get(k), int)]
    if not lengths:
        return None
    length = min(lengths)
    scaling = config.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type")) if isinstance(scaling, dict) else None
    factor = scaling.get("factor") if isinstance(scaling, dict) else None
    if isinstance(factor, (int, float)) and kind not in (
        None,
        "default",
        "su",
        "longrope",
        "llama3",
    ):
        if kind == "yarn":
            length = int(scaling.get("original_max_position_embeddings", length))
        length = int(length * factor)
    return length


def fit_context(settings: Settings, model_dir: Path) -> Settings:
    """MAX_MODEL_LEN fitted to the model: its default is capped to the model's context (with a
    warning); a longer value the user chose is an error naming both numbers."""
    limit = context_length(model_dir)
    wanted = settings.max_model_len
    if limit is None or wanted <= limit:
        return settings
    default = type(settings).model_fields["max_model_len"].default
    if wanted != default:
        raise ModelNotFoundError(
            f"MAX_MODEL_LEN={wanted} is longer than the {limit} tokens the model at {model_dir} "
            f"takes (config.json); set MAX_MODEL_LEN to {limit} or less."
        )
    log.warning(
        "MAX_MODEL_LEN: the default %d is longer than the model's %d tokens; using %d",
        wanted,
        limit,
        limit,
    )
    return settings.model_copy(update={"max_model_len": limit})


def fit_draft(settings: Settings) -> Settings:
    """SPEC_DRAFT_MODEL_ID as the directory its download left in MODEL_CACHE_DIR (as
    `download_model.py --draft_model_name` does); not downloaded: speculation off, as the
    predecessor did, with a warning."""
    if not settings.enable_speculative_decoding or settings.spec_draft_model:
        return settings
    if not settings.spec_draft_model_id:
        return settings
    found = downloaded_dir(settings.model_cache_dir, settings.spec_draft_model_id)
    if found is None:
        log.warning(
            "SPEC_DRAFT_MODEL_ID=%s: no download under %s; speculative decoding off",
            settings.spec_draft_model_id,
            settings.model_cache_dir,
        )
        return settings.model_copy(update={"enable_speculative_decoding": False})
    return settings.model_copy(update={"spec_draft_model": str(found)})


def check_model_files(path: Path) -> None:
    """Raise CorruptModelError naming each damaged file: a config.json that is not a JSON
    object, a safetensors file cut short (header or data), a shard its index lists but the
    directory lacks. Reads headers only: fast for any model size."""
    problems = _config_problems(path) + _index_problems(path)
    for weights in sorted(path.glob("*.safetensors")):
        problems += _safetensors_problems(weights)
    if problems:
        raise CorruptModelError(
            f"model directory {path} is damaged: {'; '.join(problems)}. Download the model "
            "again (python download_model.py) or point MODEL_DIR at an intact copy."
        )


def _config_problems(path: Path) -> list[str]:
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ["config.json is missing"]
    except (OSError, ValueError) as exc:
        return [f"config.json is not valid JSON ({exc})"]
    return [] if isinstance(config, dict) else ["config.json is not a JSON object"]


def _index_problems(path: Path) -> list[str]:
    problems = []
    for index in sorted(path.glob("*.index.json")):
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            problems.append(f"{index.name} is not a valid weight index ({exc!r})")
            continue
        problems += [
            f"{index.name} lists {s}, which is missing"
            for s in sorted(shards)
            if not (path / s).is_file()
        ]
    return problems


def _safetensors_problems(file: Path) -> list[str]:
    """A safetensors file: 8-byte little-endian header length, a JSON header, the data."""
    size = file.stat().st_size
    with open(file, "rb") as f:
        length = int.from_bytes(f.read(8), "little") if size >= 8 else -1
        if not 0 < length <= min(size - 8, SAFETENSORS_MAX_HEADER):
            return [f"{file.name} is truncated or not a safetensors file ({size} bytes)"]
        try:
            header = json.loads(f.read(length))
            ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
            needed = 8 + length + max(ends, default=0)
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            return [f"{file.name} has a damaged header ({type(exc).__name__}: {exc})"]
    if needed > size:
        return [f"{file.name} is truncated: {size} bytes where its header needs {needed}"]
    return []


def smoke_model_dir(cache_dir: Path) -> Path:
    """Build (once) and return the tiny random smoke-test model, warning loudly."""
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
    print(resolve_model_dir(get_settings()))
