"""`pip install -e .` in a fresh venv gives the console scripts, with dependencies and extras read
from the requirement files (their one home). Offline: the fresh venv sees this environment's
packages through a .pth file, so pip finds every requirement installed and downloads nothing.

pytest tests/scripts/test_packaging.py -q
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from qaserve.paths import REPO_ROOT

SCRIPTS = ["qaserve-serve", "qaserve-eval", "qaserve-tune", "qaserve-webui", "qaserve-download",
           "qaserve-upload", "qaserve-merge", "qaserve-quantize"]  # fmt: skip


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(env)
    purelib = subprocess.run(
        [env / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    (Path(purelib) / "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # the venv's bundled setuptools may predate the one pyproject asks for: use this one's
    subprocess.run([env / "bin" / "python", "-m", "pip", "uninstall", "-q", "-y", "setuptools"],
                   capture_output=True, check=False)  # fmt: skip
    done = subprocess.run(
        [env / "bin" / "python", "-m", "pip", "install", "--no-build-isolation", "--no-index",
         "-e", f"{REPO_ROOT}[eval,tune,webui,merge]"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return env


def test_console_scripts_run(installed: Path) -> None:
    for name in SCRIPTS:
        assert (installed / "bin" / name).exists(), name
    result = subprocess.run(
        [installed / "bin" / "qaserve-eval", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--endpoint" in result.stdout


def test_metadata_reads_the_requirement_files(installed: Path) -> None:
    code = (
        "import json, importlib.metadata as m; d = m.distribution('qaserve'); "
        "print(json.dumps(d.requires))"
    )
    out = subprocess.run(
        [installed / "bin" / "python", "-c", code], capture_output=True, text=True, check=True
    ).stdout
    requires = " ".join(__import__("json").loads(out))
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            assert line.split(">")[0].split("=")[0] in requires, line
    assert "optuna-dashboard" in requires and 'extra == "tune"' in requires
    assert "gradio" in requires and 'extra == "webui"' in requires
    assert sys.version_info >= (3, 10)
