"""`download_model.py` against the loopback fake hub, run as users run it (one process each):
the directory it prints is the SDK's, loadable and found by the server; a second run needs no
network; revisions, tokens, drafts, and every failure's message and exit code.

    pytest tests/modeltools/test_download_model.py -q
"""

from __future__ import annotations

from pathlib import Path

import pytest

from qaserve.modeltools.files import downloaded_dir, resolve_model_dir
from qaserve.modeltools.hub import EXIT_CODES, missing_parts
from qaserve.settings import load_settings
from tests.support.fake_hub import FakeHub
from tests.support.tools import (
    TOKEN,
    UNSERVED_OK,
    WRONG_TOKEN,
    closed_port_url,
    last_line,
    linked_copy,
    make_hub,
    run_tool,
)

pytestmark = pytest.mark.slow  # one SDK process per run, seconds each
DOWNLOAD = "download_model.py"


def test_download_prints_a_loadable_dir_the_server_resolves(hub: FakeHub, tmp_path: Path) -> None:
    # no flags but the model: MODEL_ID from the environment, ./model by default
    run = run_tool(DOWNLOAD, cwd=tmp_path, endpoint=hub.url, MODEL_ID="qa/tiny")
    assert run.returncode == 0, run.stderr
    path = Path(run.stdout.strip())
    assert path.is_absolute() and path.is_relative_to(tmp_path / "model")
    assert missing_parts(path) == []
    from transformers import AutoConfig, AutoTokenizer

    assert AutoConfig.from_pretrained(path).model_type == "qwen2"
    assert AutoTokenizer.from_pretrained(path)("CUDA").input_ids
    assert downloaded_dir(tmp_path / "model", "qa/tiny") == path
    settings = load_settings(model_id="qa/tiny", model_cache_dir=tmp_path / "model")
    assert resolve_model_dir(settings) == path
    listed = [r for r in hub.requests if r[1].startswith("/api/v1/models/qa/tiny/repo/files")]
    assert listed, "the SDK did not list the repo through the fake hub"
    assert set(hub.unserved) <= UNSERVED_OK, "the SDK called an endpoint the fake lacks"


def test_second_run_needs_no_network(hub_models: dict[str, Path], tmp_path: Path) -> None:
    own_hub = make_hub(tmp_path / "blobs", hub_models)
    args = ("--model_name", "qa/tiny", "--cache-dir", str(tmp_path / "cache"))
    first = run_tool(DOWNLOAD, *args, cwd=tmp_path, endpoint=own_hub.url)
    assert first.returncode == 0, first.stderr
    own_hub.stop()  # from here on every connection to the hub is refused
    again = run_tool(DOWNLOAD, *args, cwd=tmp_path, endpoint=own_hub.url)
    assert again.returncode == 0, again.stderr
    assert again.stdout == first.stdout
    assert "nothing to download" in again.stderr


def test_revision(hub: FakeHub, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    runs = {
        rev: run_tool(
            DOWNLOAD,
            "--model_name=qa/tiny",
            f"--revision={rev}",
            f"--cache_dir={cache}",
            cwd=tmp_path,
            endpoint=hub.url,
        )
        for rev in ("v1.0", "master")
    }
    paths = {rev: Path(run.stdout.strip()) for rev, run in runs.items()}
    assert all(run.returncode == 0 for run in runs.values()), runs
    assert (paths["v1.0"] / "REVISION.txt").read_text() == "v1.0"
    assert not (paths["master"] / "REVISION.txt").exists()
    assert paths["v1.0"] != paths["master"]


def test_missing_repo_and_revision_say_not_found(hub: FakeHub, tmp_path: Path) -> None:
    for args in (["--model_name", "qa/nope"], ["--model_name", "qa/tiny", "--revision", "v9"]):
        run = run_tool(DOWNLOAD, *args, cwd=tmp_path, endpoint=hub.url)
        assert run.returncode == EXIT_CODES["not found"], run.stderr
        assert last_line(run.stderr).startswith("download_model: not found: qa/")
        assert run.stdout == ""


def test_bad_token_says_unauthorized_and_is_never_printed(hub: FakeHub, tmp_path: Path) -> None:
    run = run_tool(
        DOWNLOAD,
        "--model_name",
        "qa/tiny",
        "--token",
        WRONG_TOKEN,
        cwd=tmp_path,
        endpoint=hub.url,
    )
    assert run.returncode == EXIT_CODES["unauthorized"], run.stderr
    assert last_line(run.stderr).startswith("download_model: unauthorized: qa/tiny")
    assert WRONG_TOKEN not in run.stdout + run.stderr


def test_private_repo_needs_the_token_from_either_variable(hub: FakeHub, tmp_path: Path) -> None:
    anonymous = run_tool(DOWNLOAD, "--model_name", "qa/private", cwd=tmp_path, endpoint=hub.url)
    assert anonymous.returncode == EXIT_CODES["unauthorized"], anonymous.stderr
    for variable in ("MODELSCOPE_API_TOKEN", "MODELSCOPE_TOKEN"):
        run = run_tool(
            DOWNLOAD,
            "--model_name",
            "qa/private",
            "--cache_dir",
            variable,
            cwd=tmp_path,
            endpoint=hub.url,
            **{variable: TOKEN},
        )
        assert run.returncode == 0, run.stderr
        assert missing_parts(Path(run.stdout.strip())) == []
        assert TOKEN not in run.stdout + run.stderr


def test_draft_model(hub: FakeHub, tmp_path: Path) -> None:
    base = ("--model_name", "qa/tiny", "--cache_dir", str(tmp_path / "cache"))
    both = run_tool(
        DOWNLOAD, *base, "--draft_model_name", "qa/draft", cwd=tmp_path, endpoint=hub.url
    )
    assert both.returncode == 0, both.stderr
    model, draft = (Path(line) for line in both.stdout.splitlines())
    assert missing_parts(draft) == [] and model != draft

    optional = run_tool(
        DOWNLOAD,
        *base,
        "--draft-model-name",
        "qa/no-draft",
        "--draft-optional",
        cwd=tmp_path,
        endpoint=hub.url,
    )
    assert optional.returncode == 0, optional.stderr
    assert optional.stdout.splitlines() == [str(model)]
    assert "draft model skipped" in optional.stderr

    required = run_tool(
        DOWNLOAD, *base, "--draft_model_name", "qa/no-draft", cwd=tmp_path, endpoint=hub.url
    )
    assert required.returncode == EXIT_CODES["not found"], required.stderr
    assert "qa/no-draft" in last_line(required.stderr)


def test_no_network(tmp_path: Path) -> None:
    run = run_tool(DOWNLOAD, "--model_name", "qa/tiny", cwd=tmp_path, endpoint=closed_port_url())
    assert run.returncode == EXIT_CODES["no network"], run.stderr
    assert last_line(run.stderr).startswith("download_model: no network: qa/tiny")


def test_local_source_copies_and_validates(tiny_model_dir: Path, tmp_path: Path) -> None:
    args = ("--source", "local", "--model_name", str(tiny_model_dir), "--cache_dir", "models")
    first = run_tool(DOWNLOAD, *args, cwd=tmp_path, endpoint=closed_port_url())
    assert first.returncode == 0, first.stderr
    copied = Path(first.stdout.strip())
    assert copied == tmp_path / "models" / tiny_model_dir.name
    assert missing_parts(copied) == []
    again = run_tool(DOWNLOAD, *args, cwd=tmp_path, endpoint=closed_port_url())
    assert again.returncode == 0 and again.stdout == first.stdout, again.stderr

    not_a_model = tmp_path / "notes"
    not_a_model.mkdir()
    (not_a_model / "README.md").write_text("no weights here")
    refused = run_tool(
        DOWNLOAD,
        "--source",
        "local",
        "--model_name",
        str(not_a_model),
        "--cache_dir",
        "models",
        cwd=tmp_path,
        endpoint=closed_port_url(),
    )
    assert refused.returncode == EXIT_CODES["not a model"], refused.stderr
    assert "config.json" in last_line(refused.stderr)


def test_hf_source_uses_its_cache_offline(tiny_model_dir: Path, tmp_path: Path) -> None:
    """huggingface_hub's own cache layout is found without a network (HF_ENDPOINT refused)."""
    repo = tmp_path / "cache" / "models--qa--tiny"
    snapshot = linked_copy(tiny_model_dir, repo / "snapshots" / ("a" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    args = ("--source", "hf", "--model_name", "qa/tiny", "--cache_dir", "cache")
    run = run_tool(DOWNLOAD, *args, cwd=tmp_path, endpoint=closed_port_url())
    assert run.returncode == 0, run.stderr
    assert Path(run.stdout.strip()) == snapshot

    missing = run_tool(
        DOWNLOAD,
        "--source",
        "hf",
        "--model_name",
        "qa/other",
        cwd=tmp_path,
        endpoint=closed_port_url(),
    )
    assert missing.returncode == EXIT_CODES["no network"], missing.stderr
