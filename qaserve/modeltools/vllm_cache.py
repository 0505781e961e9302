"""Fill the part of vLLM's cache that needs no GPU, so a new container's first start skips it.

The first time vLLM meets a model architecture it inspects the model class in a subprocess and
keeps the result under `VLLM_CACHE_ROOT` (`modelinfos/`). It took 10 s on a 2-core CPU and
nothing once cached; a cold start on the H200 machine (128 s) spent ~22 s at that step. The
Docker images run this at build time, after the model download (no GPU needed).

    python -m qaserve.modeltools.vllm_cache              # the model the server would load
    python -m qaserve.modeltools.vllm_cache MODEL_DIR

A vLLM that cannot do it here (no GPU platform at build time, an older API) is reported and
skipped with exit status 0: the server's first start then does it as before.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from qaserve.modeltools.files import resolve_model_dir
from qaserve.settings import get_settings


def fill_model_info(model_dir: Path) -> float:
    """Have vLLM inspect the model's architecture (and cache it); the seconds it took."""
    from vllm import EngineArgs

    start = time.monotonic()
    EngineArgs(model=str(model_dir), tokenizer=str(model_dir)).create_model_config()
    return time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", type=Path, help="default: what the server loads")
    args = parser.parse_args(argv)
    model_dir = args.model_dir
    if model_dir is None:
        model_dir = resolve_model_dir(get_settings())
    if not (model_dir / "config.json").is_file():
        parser.error(f"{model_dir} has no config.json: not a model directory")
    try:
        seconds = fill_model_info(model_dir)
    except Exception as exc:  # best effort: the first start does the same work
        print(f"vLLM's model info for {model_dir} not cached ({type(exc).__name__}: {exc})")
        return 0
    print(f"vLLM's model info for {model_dir} cached in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
