"""The Dockerfiles, checked without a Docker engine (none runs here): names, secrets, launch
path, health check, build context."""

from __future__ import annotations

import re

import pytest
from dockerfile_parse import DockerfileParser

from qaserve.paths import REPO_ROOT
from qaserve.settings import Settings

ROOT = REPO_ROOT
DOCKERFILES = ["Dockerfile", "Dockerfile.metax"]
# variables of other programs the images may set; everything else must be a Settings field
THIRD_PARTY_ENV = {"PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"}
BUILD_ONLY_ARGS = {"BASE_IMAGE", "MODEL_REVISION", "MODELSCOPE_ENDPOINT"}
SECRET_WORDS = re.compile(r"TOKEN|SECRET|PASSWORD|API_KEY", re.I)


def _parsed(name: str) -> DockerfileParser:
    parser = DockerfileParser(fileobj=(ROOT / name).open("rb"))
    return parser


def _instructions(name: str, kind: str) -> list[str]:
    return [i["value"] for i in _parsed(name).structure if i["instruction"] == kind]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_env_and_arg_names_are_settings_or_known(name: str) -> None:
    fields = {f.upper() for f in Settings.model_fields}
    env = {m for v in _instructions(name, "ENV") for m in re.findall(r"([A-Z_][A-Z0-9_]*)=", v)}
    args = {v.split("=")[0] for v in _instructions(name, "ARG")}
    assert env, "the image sets no environment?"
    assert env <= fields | THIRD_PARTY_ENV, env - fields - THIRD_PARTY_ENV
    assert args <= fields | BUILD_ONLY_ARGS, args - fields - BUILD_ONLY_ARGS


@pytest.mark.parametrize("name", DOCKERFILES)
def test_no_secret_in_env_or_arg(name: str) -> None:
    for kind in ("ENV", "ARG", "LABEL"):
        for value in _instructions(name, kind):
            assert not SECRET_WORDS.search(value), f"{kind} {value}: use a build secret"
    text = (ROOT / name).read_text(encoding="utf-8")
    assert "--mount=type=secret,id=modelscope_token" in text


@pytest.mark.parametrize("name", DOCKERFILES)
def test_runs_the_server_like_run_model_sh(name: str) -> None:
    cmd = _instructions(name, "CMD")
    assert cmd == ['["bash", "run_model.sh"]']
    assert _instructions(name, "ENTRYPOINT") == ["[]"]  # the vLLM image's own entry point is off
    assert _instructions(name, "EXPOSE") == [str(Settings().port)]
    (health,) = _instructions(name, "HEALTHCHECK")
    assert f"http://127.0.0.1:{Settings().port}/" in health
    assert "--start-period=180s" in health  # the grader's health limit


def test_the_two_images_differ_only_in_base_and_header() -> None:
    def body(name: str) -> list[str]:
        lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
        return [x for x in lines if not x.startswith(("#", "ARG BASE_IMAGE="))]

    assert body("Dockerfile") == body("Dockerfile.metax")
    assert "py310" in _instructions("Dockerfile.metax", "ARG")[0]


def test_the_model_is_downloaded_at_build_time_into_the_served_place() -> None:
    run = " ".join(_instructions("Dockerfile", "RUN"))
    assert "scripts/image_download.sh" in run
    script = (ROOT / "scripts/image_download.sh").read_text(encoding="utf-8")
    assert f"--cache_dir {Settings().model_cache_dir}" in script
    assert "download_model.py" in script


@pytest.mark.parametrize("name", DOCKERFILES)
def test_vllm_model_info_is_cached_after_the_download_with_the_served_model(name: str) -> None:
    steps = [(i["instruction"], i["value"]) for i in _parsed(name).structure]
    runs = [value for kind, value in steps if kind == "RUN"]
    fill = next(i for i, v in enumerate(runs) if "qaserve.modeltools.vllm_cache" in v)
    download = next(i for i, v in enumerate(runs) if "image_download.sh" in v)
    assert fill > download
    at = steps.index(("RUN", runs[fill]))
    envs = " ".join(value for kind, value in steps[:at] if kind == "ENV")
    assert "MODEL_ID=" in envs  # it resolves the model as the server will


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = set((ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    for entry in ("model/", "models/", ".venv*", ".git", "artifacts/", "**/__pycache__", ".dev*/"):
        assert entry in ignored
