"""Which model the server loads when none is configured: the bundled demo, the smoke model,
or a clear error.   pytest tests/modeltools/test_model_resolution.py -q"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from qaserve.modeltools import files as model_path
from qaserve.modeltools.files import ModelNotFoundError, resolve_model_dir
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


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p / "absent", "does not exist"),
        (lambda p: p, "has no config.json"),
        (lambda p: (p / "config.json").write_text("{}") and p, "has no weights"),
    ],
)
def test_a_model_dir_without_a_model_is_an_error_naming_it(
    tmp_path: Path, make: object, words: str
) -> None:
    given = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(ModelNotFoundError) as error:  # never the demo model in its place
        resolve_model_dir(settings(tmp_path, model_dir=given))
    assert f"MODEL_DIR={given} {words}" in str(error.value)


def _config(tmp_path: Path, **values: object) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(values), encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("config", "length"),
    [
        ({"max_position_embeddings": 2048}, 2048),
        ({"max_position_embeddings": 4096, "seq_length": 1024}, 1024),  # vLLM takes the smallest
        ({"max_position_embeddings": 4096, "rope_scaling": {"type": "linear", "factor": 2}}, 8192),
        (
            {
                "max_position_embeddings": 131072,
                "rope_scaling": {
                    "rope_type": "yarn",
                    "factor": 4,
                    "original_max_position_embeddings": 32768,
                },
            },
            131072,
        ),
        ({"hidden_size": 8}, None),
    ],
)
def test_context_length_is_read_as_vllm_reads_it(
    tmp_path: Path, config: dict[str, object], length: int | None
) -> None:
    assert model_path.context_length(_config(tmp_path, **config)) == length


def test_the_default_context_is_fitted_to_a_shorter_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = _config(tmp_path, max_position_embeddings=2048)
    with caplog.at_level(logging.WARNING):
        fitted = model_path.fit_context(settings(tmp_path), model)
    assert fitted.max_model_len == 2048
    assert "MAX_MODEL_LEN" in caplog.text and "2048" in caplog.text


def test_a_longer_context_the_user_set_is_an_error_naming_both_numbers(tmp_path: Path) -> None:
    model = _config(tmp_path, max_position_embeddings=2048)
    with pytest.raises(ModelNotFoundError, match=r"MAX_MODEL_LEN=8192 .* 2048 tokens"):
        model_path.fit_context(settings(tmp_path, max_model_len=8192), model)
    kept = model_path.fit_context(settings(tmp_path, max_model_len=1024), model)
    assert kept.max_model_len == 1024
