"""Which model the server loads when none is configured: the bundled demo, the smoke model,
or a clear error.   pytest tests/unit/test_model_resolution.py -q"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from qaserve import model_path
from qaserve.model_path import ModelNotFoundError, resolve_model_dir
from qaserve.settings import Settings


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(model_cache_dir=tmp_path / "cache", model_id="me/absent", **values)


def test_demo_model_is_the_default_fallback(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    with caplog.at_level(logging.WARNING):
        assert resolve_model_dir(settings(tmp_path)) == model_path.DEMO_MODEL_DIR
    assert "DEMO model" in caplog.text and "MODEL_ID=me/absent" in caplog.text


def test_without_fallbacks_the_error_says_how_to_get_a_model(tmp_path: Path):
    with pytest.raises(ModelNotFoundError) as error:
        resolve_model_dir(settings(tmp_path, demo_model_fallback=False))
    message = str(error.value)
    assert "download_model.py --model_name me/absent" in message and "MODEL_DIR" in message


def test_missing_demo_directory_gives_the_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(model_path, "DEMO_MODEL_DIR", tmp_path / "deleted")
    with pytest.raises(ModelNotFoundError):
        resolve_model_dir(settings(tmp_path))


def test_a_configured_model_beats_the_demo(tmp_path: Path, tiny_model_dir: Path):
    assert resolve_model_dir(settings(tmp_path, model_dir=tiny_model_dir)) == tiny_model_dir


def test_smoke_flag_beats_the_demo(tmp_path: Path):
    found = resolve_model_dir(settings(tmp_path, smoke_model_fallback=True))
    assert found == tmp_path / "cache" / model_path.SMOKE_DIR_NAME
