"""`upload_model.py` against the loopback fake hub, as users run it: a real upload (create repo,
LFS batch, blob PUTs, commit) that downloads back byte-identical, `--dry-run`, the refusal of
folders that are not a model, and tokens that are wrong or absent (and never printed).

    pytest tests/modeltools/test_upload_model.py -q
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from qaserve.modeltools.hub import EXIT_CODES
from tests.support.fake_hub import FakeHub
from tests.support.tools import (
    TOKEN,
    UNSERVED_OK,
    WRONG_TOKEN,
    last_line,
    linked_copy,
    run_tool,
)

pytestmark = pytest.mark.slow  # one SDK process per run, seconds each
UPLOAD = "upload_model.py"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _model_folder(tiny_model_dir: Path, tmp_path: Path) -> Path:
    return linked_copy(tiny_model_dir, tmp_path / "my-model", {".notes": "private, not sent"})


def test_upload_then_download_back(hub: FakeHub, tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _model_folder(tiny_model_dir, tmp_path)
    args = ("--repo-id", "qa/uploaded", "--model-dir", str(folder), "--private")
    run = run_tool(
        UPLOAD,
        *args,
        "--commit-message",
        "first",
        cwd=tmp_path,
        endpoint=hub.url,
        MODELSCOPE_API_TOKEN=TOKEN,
    )
    assert run.returncode == 0, run.stderr
    assert last_line(run.stdout).startswith("uploaded 8 files")
    assert TOKEN not in run.stdout + run.stderr

    repo = hub.repos["qa/uploaded"]
    assert repo.private
    sent = repo.revisions["master"]
    assert sorted(sent) == sorted(p.name for p in tiny_model_dir.iterdir())  # no .notes
    assert all(_digest(sent[name]) == _digest(tiny_model_dir / name) for name in sent)
    assert [c["commit_message"] for c in hub.commits if "first" in c["commit_message"]]
    assert any(r[0] == "PUT" for r in hub.requests), "no LFS blob was PUT"
    assert not (folder / ".ms_upload_cache").exists(), "the SDK's resume record was left behind"
    assert set(hub.unserved) <= UNSERVED_OK, "the SDK called an endpoint the fake lacks"

    back = run_tool(
        "download_model.py",
        "--model_name",
        "qa/uploaded",
        "--token",
        TOKEN,
        cwd=tmp_path,
        endpoint=hub.url,
    )
    assert back.returncode == 0, back.stderr
    fetched = Path(back.stdout.strip())
    assert all(_digest(fetched / name) == _digest(tiny_model_dir / name) for name in sent)


def test_dry_run_lists_files_and_sizes_and_sends_nothing(
    hub: FakeHub, tiny_model_dir: Path, tmp_path: Path
) -> None:
    folder = _model_folder(tiny_model_dir, tmp_path)
    before = len(hub.requests)
    run = run_tool(
        UPLOAD,
        "--repo_id",
        "qa/dry",
        "--model_dir",
        str(folder),
        "--dry-run",
        cwd=tmp_path,
        endpoint=hub.url,
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    listed = {line.split()[-1]: int(line.split()[0].replace(",", "")) for line in lines[:-1]}
    assert listed == {p.name: p.stat().st_size for p in tiny_model_dir.iterdir()}
    assert lines[-1].startswith("would upload 8 files") and "qa/dry" in lines[-1]
    assert len(hub.requests) == before and "qa/dry" not in hub.repos


def test_refuses_a_folder_that_is_not_a_model(hub: FakeHub, tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "README.md").write_text("no weights here")
    run = run_tool(
        UPLOAD,
        "--repo-id",
        "qa/notes",
        "--model-dir",
        str(folder),
        cwd=tmp_path,
        endpoint=hub.url,
        MODELSCOPE_API_TOKEN=TOKEN,
    )
    assert run.returncode == EXIT_CODES["not a model"], run.stderr
    assert "config.json" in last_line(run.stderr) and "--force" in last_line(run.stderr)
    assert "qa/notes" not in hub.repos

    forced = run_tool(
        UPLOAD,
        "--repo-id",
        "qa/notes",
        "--model-dir",
        str(folder),
        "--force",
        cwd=tmp_path,
        endpoint=hub.url,
        MODELSCOPE_API_TOKEN=TOKEN,
    )
    assert forced.returncode == 0, forced.stderr
    assert sorted(hub.repos["qa/notes"].revisions["master"]) == ["README.md"]


def test_wrong_or_missing_token_is_unauthorized(
    hub: FakeHub, tiny_model_dir: Path, tmp_path: Path
) -> None:
    folder = _model_folder(tiny_model_dir, tmp_path)
    wrong = run_tool(
        UPLOAD,
        "--repo-id",
        "qa/denied",
        "--model-dir",
        str(folder),
        "--token",
        WRONG_TOKEN,
        cwd=tmp_path,
        endpoint=hub.url,
    )
    assert wrong.returncode == EXIT_CODES["unauthorized"], wrong.stderr
    assert last_line(wrong.stderr).startswith("upload_model: unauthorized: upload to qa/denied")
    assert WRONG_TOKEN not in wrong.stdout + wrong.stderr

    # REPO_ID and MODEL_DIR from the environment; no token anywhere
    none = run_tool(
        UPLOAD, cwd=tmp_path, endpoint=hub.url, REPO_ID="qa/denied", MODEL_DIR=str(folder)
    )
    assert none.returncode == EXIT_CODES["unauthorized"], none.stderr
    assert "qa/denied" not in hub.repos
