"""Model tools without a hub: loadability checks, what each failure is called (and its exit
code), CLI > environment > default for both tools, the token setting and its two names, and
the ModelScope cache layout the server finds.

    pytest tests/modeltools/test_hub.py -q
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from qaserve.modeltools import hub
from qaserve.modeltools.files import downloaded_dir
from qaserve.modeltools.hub import (
    EXIT_CODES,
    ToolError,
    classify,
    download_main,
    explain,
    missing_parts,
)
from qaserve.settings import Settings, load_settings
from qaserve.settings_doc import env_force_script, env_names, env_table

SECRET = "ms-unit-secret-0b7e"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper() in {n for f in Settings.model_fields for n in env_names(f)}:
            monkeypatch.delenv(name)


def _model(path: Path, *names: str) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text('{"model_type": "qwen2"}')
    for name in names or ("tokenizer.json", "model.safetensors"):
        (path / name).write_text("x")
    return path


# --- loadability ---------------------------------------------------------------------------


def test_missing_parts(tmp_path: Path) -> None:
    assert missing_parts(_model(tmp_path / "ok")) == []
    assert missing_parts(tmp_path / "nothing") == [
        "config.json",
        "tokenizer files",
        "weights (*.safetensors, *.bin)",
    ]
    no_tokenizer = _model(tmp_path / "head", "model.safetensors")
    assert missing_parts(no_tokenizer) == ["tokenizer files"]
    assert missing_parts(no_tokenizer, tokenizer=False) == []  # drafts (EAGLE heads) may lack one
    broken = _model(tmp_path / "broken")
    (broken / "config.json").write_text("{not json")
    assert missing_parts(broken) == ["config.json"]


def test_missing_shards_of_an_index(tmp_path: Path) -> None:
    path = _model(tmp_path / "sharded", "tokenizer.json", "model-00001-of-00002.safetensors")
    weight_map = {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
    (path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert missing_parts(path) == ["shard model-00002-of-00002.safetensors"]


# --- failures: cause and exit code ---------------------------------------------------------


class NotExistError(Exception):  # named like the SDKs' classes: matched by name
    pass


class FileDownloadError(Exception):
    def __init__(self, failed: dict[str, BaseException]) -> None:
        super().__init__("1 of 1 file(s) failed")
        self.failed_files = failed


def _http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"HTTP {status}", response=response)


def _caused(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


@pytest.mark.parametrize(
    ("exc", "cause"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "disk full"),
        (FileDownloadError({"model.safetensors": OSError(errno.ENOSPC, "full")}), "disk full"),
        (_caused(RuntimeError("copy failed"), OSError(errno.EDQUOT, "quota")), "disk full"),
        (_http_error(404), "not found"),
        (_caused(requests.HTTPError("wrapped"), NotExistError("no such model")), "not found"),
        (_http_error(401), "unauthorized"),
        (_http_error(403), "unauthorized"),
        (requests.ConnectionError("refused"), "no network"),
        (ConnectionRefusedError("refused"), "no network"),
        (httpx.ConnectError("refused"), "no network"),
        (_http_error(500), "error"),
        (ValueError("something else"), "error"),
    ],
)
def test_classify(exc: BaseException, cause: str) -> None:
    assert classify(exc) == cause


def test_exit_codes_are_distinct_and_messages_one_line_without_the_token() -> None:
    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES)
    error = explain(_http_error(401), "qa/x", SECRET)
    assert (error.kind, error.exit_code) == ("unauthorized", EXIT_CODES["unauthorized"])
    echoed = explain(RuntimeError(f"server said: bad token {SECRET}\nmore"), "qa/x", SECRET)
    assert SECRET not in str(echoed) and "\n" not in str(echoed)


def test_disk_full_during_download(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def full(*args: Any, **kwargs: Any) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(hub, "_snapshot", full)
    code = download_main(["--model_name", "qa/tiny", "--cache_dir", str(tmp_path)])
    assert code == EXIT_CODES["disk full"]
    assert capsys.readouterr().err.strip().startswith("download_model: disk full: qa/tiny")


# --- CLI > environment > default -----------------------------------------------------------


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fake_fetch(model_id: str, revision: str | None = None, **opts: Any) -> Path:
        calls.append({"model_id": model_id, "revision": revision, **opts})
        return Path("/models") / model_id

    monkeypatch.setattr(hub, "fetch", fake_fetch)
    return calls


def test_download_defaults_env_and_flags(
    fetched: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert download_main([]) == 0
    assert fetched[-1] == {
        "model_id": "Qwen/Qwen2.5-0.5B-Instruct",
        "revision": None,
        "token": None,
        "source": "modelscope",
        "cache_dir": Path("model"),
    }
    monkeypatch.setenv("MODEL_ID", "qa/env")
    monkeypatch.setenv("MODEL_CACHE_DIR", "/env-cache")
    monkeypatch.setenv("MODELSCOPE_TOKEN", SECRET)
    assert download_main([]) == 0
    assert fetched[-1]["model_id"] == "qa/env" and fetched[-1]["token"] == SECRET
    assert fetched[-1]["cache_dir"] == Path("/env-cache")
    argv = ["--model-name", "qa/cli", "--cache_dir", "/cli", "--token", "t2", "--revision", "v1"]
    assert download_main(argv) == 0
    assert fetched[-1] == {
        "model_id": "qa/cli",
        "revision": "v1",
        "token": "t2",
        "source": "modelscope",
        "cache_dir": Path("/cli"),
    }
    assert download_main(["--source", "hf"]) == 0
    assert fetched[-1]["token"] is None  # the ModelScope token is never sent to another hub


def test_upload_takes_repo_and_folder_from_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert hub.upload_main([]) == EXIT_CODES["usage"]
    monkeypatch.setenv("REPO_ID", "qa/env")
    monkeypatch.setenv("MODEL_DIR", str(_model(tmp_path / "m")))
    assert hub.upload_main(["--dry_run"]) == 0
    out = capsys.readouterr().out
    assert "model.safetensors" in out and "to qa/env" in out
    assert hub.upload_main(["--dry-run", "--repo_id", "qa/cli"]) == 0
    assert "to qa/cli" in capsys.readouterr().out


# --- the token setting, its two names, and the docs ----------------------------------------


def test_token_reads_either_name_and_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSCOPE_TOKEN", SECRET)
    settings = load_settings()
    assert settings.modelscope_api_token is not None
    assert settings.modelscope_api_token.get_secret_value() == SECRET
    assert settings.non_defaults() == {"modelscope_api_token": "***"}
    assert SECRET not in repr(settings) + repr(settings.shown())
    monkeypatch.setenv("MODELSCOPE_API_TOKEN", "api-wins")
    both = load_settings().modelscope_api_token
    assert both is not None and both.get_secret_value() == "api-wins"
    monkeypatch.setenv("REPO_ID", "qa/repo")
    assert load_settings().repo_id == "qa/repo"


def test_docs_name_both_token_variables() -> None:
    assert env_names("modelscope_api_token") == ["MODELSCOPE_API_TOKEN", "MODELSCOPE_TOKEN"]
    table = env_table()
    assert "| `MODELSCOPE_API_TOKEN` |" in table and "| `MODELSCOPE_TOKEN` |" in table
    script = env_force_script()
    assert "unset MODELSCOPE_API_TOKEN\n" in script and "unset MODELSCOPE_TOKEN\n" in script


# --- where the server finds a download -----------------------------------------------------


def test_server_finds_the_modelscope_hub_layout(tmp_path: Path) -> None:
    snapshots = tmp_path / "models" / "Qwen--Qwen2.5-0.5B-Instruct" / "snapshots"
    other = _model(snapshots / "v1.0")
    assert downloaded_dir(tmp_path, "Qwen/Qwen2.5-0.5B-Instruct") == other
    master = _model(snapshots / "master")
    assert downloaded_dir(tmp_path, "Qwen/Qwen2.5-0.5B-Instruct") == master


def test_tool_error_names_its_cause() -> None:
    error = ToolError("not a model", "x lacks config.json")
    assert str(error) == "not a model: x lacks config.json" and error.exit_code == 7
