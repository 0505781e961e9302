"""scripts/setup.sh's decisions and run_model.sh's engine check, without installing anything big
or starting an engine: stand-ins for `nvidia-smi`, the system python and `serve.py`.

    pytest tests/scripts/test_setup.py -q   # ~30 s; the CPU tests make throwaway venvs
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shlex
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from qaserve.paths import REPO_ROOT
from qaserve.settings import Settings
from qaserve.settings_doc import env_names

REPO = REPO_ROOT
SETUP = REPO / "scripts" / "setup.sh"
RUN_MODEL = REPO / "run_model.sh"
_CPU_SET = (REPO / "requirements" / "cpu.txt").read_text(encoding="utf-8")
TORCH_CPU = re.search(r"^torch==([\d.]+)", _CPU_SET, re.M)[1] + "+cpu"  # type: ignore[index]
UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: nothing listens, refused at once
_OURS = {name for field in Settings.model_fields for name in env_names(field)}
# the variables that add package sources to pip (the machine's pip config is the other place)
_PIP_SOURCES = ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX")


def _script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + text, encoding="utf-8")
    path.chmod(0o755)
    return path


def fake_nvidia_smi(bin_dir: Path, works: bool) -> Path:
    """A stand-in `nvidia-smi`: lists one GPU, or fails like a machine without a usable driver."""
    if works:
        body = 'echo "GPU 0: NVIDIA H200 (UUID: GPU-00000000-fake)"\n'
    else:
        body = 'echo "NVIDIA-SMI has failed because it could not communicate with the driver" >&2\n'
        body += "exit 9\n"
    _script(bin_dir / "nvidia-smi", body)
    return bin_dir


def fake_system_python(tmp: Path, with_vllm: bool) -> Path:
    """A stand-in system python: the real interpreter, plus an importable (fake) vllm package
    that logs to stdout on import as the real one may."""
    site = tmp / "system-site"
    site.mkdir(parents=True, exist_ok=True)
    if with_vllm:
        (site / "vllm").mkdir(exist_ok=True)
        (site / "vllm" / "__init__.py").write_text(
            '__version__ = "0.10.1"\nprint("INFO platform detection noise")\n', encoding="utf-8"
        )
    # PYTHONNOUSERSITE: the user's own site-packages could hold a real vllm
    body = f"PYTHONPATH={shlex.quote(str(site))} PYTHONNOUSERSITE=1 "
    body += f'exec {shlex.quote(sys.executable)} -S "$@"\n'
    return _script(tmp / "system-python", body)


def base_env(path_first: Path, **extra: str) -> dict[str, str]:
    """The caller's environment without our settings, with `path_first` first on PATH."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in _OURS}
    env.pop("VENV", None)
    env.pop("TORCH_INDEX_URL", None)
    env["PATH"] = f"{path_first}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def run(cmd: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def plan(env: dict[str, str], *flags: str) -> dict[str, str]:
    done = run(["bash", str(SETUP), "--plan", *flags], env)
    assert done.returncode == 0, done.stderr + done.stdout
    return dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)


def venv_state(venv: Path) -> list[tuple[str, int]]:
    """What setup would change in a venv: its top-level entries and their modification times."""
    if not venv.is_dir():
        return []
    return sorted((p.name, p.stat().st_mtime_ns) for p in venv.iterdir())


@functools.cache
def local_torch_wheel() -> Path | None:
    """The torch CPU wheel this machine's pip configuration offers (a local wheel folder)."""
    listed = run([sys.executable, "-m", "pip", "config", "list"], dict(os.environ)).stdout
    folders = re.findall(r"find-links='([^']*)'", listed)
    folders += os.environ.get("PIP_FIND_LINKS", "").split()
    tag = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    for folder in (f for line in folders for f in line.split()):
        for wheel in Path(folder).glob(f"torch-{TORCH_CPU}-{tag}-*.whl"):
            return wheel
    return None


@pytest.fixture
def torch_index(tmp_path: Path) -> Iterator[str]:
    """A loopback PEP 503 index holding only the local torch CPU wheel (PyTorch's index's role),
    with its PEP 658 metadata file, as download.pytorch.org serves it."""
    wheel = local_torch_wheel()
    if wheel is None:
        pytest.skip(f"no local torch-{TORCH_CPU} wheel in pip's config")
    root = tmp_path / "index"
    (root / "torch").mkdir(parents=True)
    (root / "torch" / wheel.name).symlink_to(wheel)
    with zipfile.ZipFile(wheel) as whl:
        meta = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        (root / "torch" / f"{wheel.name}.metadata").write_bytes(whl.read(meta))
    link = f'<a href="{wheel.name}" data-dist-info-metadata="true">{wheel.name}</a>'
    (root / "torch" / "index.html").write_text(f"<html><body>{link}</body></html>", "utf-8")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


# --- CPU mode: where torch's CPU build comes from ---------------------------------------------


@pytest.mark.slow
def test_without_any_torch_source_setup_stops_fast_and_says_how_to_fix_it(tmp_path: Path) -> None:
    """As on a user's CPU machine: PyPI only (no local wheels), PyTorch's index unreachable."""
    real_before = venv_state(REPO / ".venv")
    venv = tmp_path / "venv"
    bin_dir = fake_nvidia_smi(tmp_path / "bin", works=False)
    env = base_env(bin_dir, PIP_CONFIG_FILE=os.devnull, VENV=str(venv), TORCH_INDEX_URL=UNREACHABLE)
    for name in _PIP_SOURCES:
        env.pop(name, None)
    start = time.monotonic()
    done = run(["bash", str(SETUP)], env)
    elapsed = time.monotonic() - start

    assert done.returncode == 3, done.stdout + done.stderr
    assert elapsed < 30, f"setup took {elapsed:.1f} s to give up"
    err = done.stderr
    assert f"cannot get torch {TORCH_CPU}" in err
    assert "PyPI has no '+cpu' builds" in err
    assert f"TORCH_INDEX_URL={UNREACHABLE}" in err
    assert "Connection refused" in err  # pip's own reason, one line
    for fix in ("point TORCH_INDEX_URL at a reachable mirror", "pre-install torch", "Docker image"):
        assert fix in err
    assert "GPU host" in err
    assert "Traceback" not in err and "ResolutionImpossible" not in err
    assert "setup: cpu: CPU machine (nvidia-smi is on PATH but fails" in done.stdout
    # nothing was installed into the new venv, and the real one was not touched
    check = run([str(venv / "bin" / "python"), "-c", "import torch"], env)
    assert check.returncode != 0
    assert not list(venv.glob(".installed-*"))
    assert venv_state(REPO / ".venv") == real_before


@pytest.mark.slow
def test_quant_setup_on_a_cpu_machine_never_takes_pypis_cuda_torch(tmp_path: Path) -> None:
    """setup_quant.sh takes torch's CPU build where setup.sh does; with no source of it, it stops
    with setup.sh's fixes instead of downloading PyPI's CUDA build."""
    for name in ("scripts/setup_quant.sh", "scripts/torch_cpu.sh", "requirements/cpu.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text((REPO / name).read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "requirements" / "quant.txt").write_text("six\n", encoding="utf-8")
    bin_dir = fake_nvidia_smi(tmp_path / "bin", works=False)
    env = base_env(bin_dir, PIP_CONFIG_FILE=os.devnull, TORCH_INDEX_URL=UNREACHABLE)
    for name in _PIP_SOURCES:
        env.pop(name, None)
    done = run(["bash", str(tmp_path / "scripts" / "setup_quant.sh")], env, timeout=180)

    assert done.returncode == 3, done.stdout + done.stderr
    assert f"cannot get torch {TORCH_CPU}" in done.stderr
    assert "quantize_awq.py needs on a CPU machine" in done.stderr
    assert "pre-install torch" in done.stderr and ".venv-quant/bin/pip install" in done.stderr
    check = run([str(tmp_path / ".venv-quant" / "bin" / "python"), "-c", "import torch"], env)
    assert check.returncode != 0


@pytest.mark.skipif(
    not local_torch_wheel(), reason=f"no local torch-{TORCH_CPU} wheel in pip's config"
)
@pytest.mark.slow
def test_the_configured_pip_sources_are_tried_first(tmp_path: Path) -> None:
    """This machine's pip config (a local wheel folder) has the CPU torch: no extra index."""
    bin_dir = fake_nvidia_smi(tmp_path / "bin", works=False)
    env = base_env(bin_dir, VENV=str(tmp_path / "venv"), TORCH_INDEX_URL=UNREACHABLE)
    lines = plan(env)
    assert lines["mode"] == "cpu"
    assert "nvidia-smi is on PATH but fails" in lines["why"]
    assert lines["venv"] == f"{tmp_path / 'venv'} (plain)"
    assert lines["requirements"] == "requirements/cpu.txt"
    assert lines["torch"] == f"{TORCH_CPU} from the configured pip sources"
    assert lines["index"] == "the configured pip sources only"
    assert "torchvision torchaudio torchcodec" in lines["after"]
    assert not (tmp_path / "venv").exists()  # the plan probed in a throwaway venv


def test_dev_plan_skips_the_probe_when_the_venv_has_the_cpu_torch(tmp_path: Path) -> None:
    venv = REPO / ".venv"
    has = run([str(venv / "bin" / "python"), "-m", "pip", "show", "torch"], dict(os.environ))
    if f"Version: {TORCH_CPU}" not in has.stdout:
        pytest.skip(f".venv has no torch {TORCH_CPU}")
    before = venv_state(venv)
    bin_dir = fake_nvidia_smi(tmp_path / "bin", works=True)  # --dev is CPU even on a GPU host
    env = base_env(bin_dir, VENV=str(venv), TORCH_INDEX_URL=UNREACHABLE)
    lines = plan(env, "--dev")
    assert lines["mode"] == "cpu"
    assert lines["why"].startswith("--dev")
    assert lines["requirements"] == "requirements/dev.txt"
    assert lines["torch"] == f"{TORCH_CPU} already installed in {venv} (not probed)"
    assert venv_state(venv) == before


@pytest.mark.slow
def test_without_local_wheels_torch_comes_from_torch_index_url(
    tmp_path: Path, torch_index: str
) -> None:
    """As on a user's CPU machine with PyTorch's index (or a mirror) reachable: the extra index
    is used, and only then."""
    bin_dir = fake_nvidia_smi(tmp_path / "bin", works=False)
    env = base_env(bin_dir, PIP_CONFIG_FILE=os.devnull, VENV=str(tmp_path / "venv"))
    for name in _PIP_SOURCES:
        env.pop(name, None)
    env["TORCH_INDEX_URL"] = torch_index
    lines = plan(env)
    assert lines["torch"] == f"{TORCH_CPU} from PyTorch's CPU wheel index {torch_index}"
    assert lines["index"] == f"--extra-index-url {torch_index} --trusted-host 127.0.0.1"


# --- GPU hosts ------------------------------------------------------------------------------


def test_gpu_host_whose_python_has_vllm_builds_on_the_system_stack(tmp_path: Path) -> None:
    bin_dir = fake_nvidia_smi(tmp_path / "bin", works=True)
    python = fake_system_python(tmp_path, with_vllm=True)
    env = base_env(bin_dir, PYTHON=str(python), VENV=str(tmp_path / "venv"))
    lines = plan(env)
    assert lines["mode"] == "gpu-system"
    assert "nvidia-smi lists a GPU" in lines["why"]
    assert f"{python} imports vllm 0.10.1" in lines["why"]
    assert lines["venv"] == f"{tmp_path / 'venv'} --system-site-packages"
    assert lines["requirements"] == "requirements.txt requirements/tools.txt"
    assert lines["constraints"].startswith(f"the versions installed for {python}")
    assert lines["index"] == "the configured pip sources only"
    assert "torch" not in lines
    assert not (tmp_path / "venv").exists()


def test_gpu_host_whose_python_has_no_vllm_gets_vllm_from_pypi(tmp_path: Path) -> None:
    bin_dir = fake_nvidia_smi(tmp_path / "bin", works=True)
    python = fake_system_python(tmp_path, with_vllm=False)
    env = base_env(bin_dir, PYTHON=str(python), VENV=str(tmp_path / "venv"))
    lines = plan(env)
    assert lines["mode"] == "gpu-pypi"
    assert f"{python} cannot import vllm" in lines["why"]
    assert lines["venv"] == f"{tmp_path / 'venv'} (plain)"
    assert lines["requirements"] == "requirements/gpu.txt"
    assert "vllm==" in (REPO / "requirements" / "gpu.txt").read_text(encoding="utf-8")


def test_a_venv_of_the_other_kind_is_refused_with_the_fix(tmp_path: Path) -> None:
    """A plain venv left from a CPU install cannot become the system-stack one by itself."""
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text("include-system-site-packages = false\n", encoding="utf-8")
    bin_dir = fake_nvidia_smi(tmp_path / "bin", works=True)
    python = fake_system_python(tmp_path, with_vllm=True)
    done = run(["bash", str(SETUP)], base_env(bin_dir, PYTHON=str(python), VENV=str(venv)))
    assert done.returncode == 1
    assert "was made without the system site-packages" in done.stderr
    assert f"rm -rf {venv}" in done.stderr
    assert sorted(p.name for p in venv.iterdir()) == ["pyvenv.cfg"]


def test_unknown_arguments_are_refused(tmp_path: Path) -> None:
    done = run(["bash", str(SETUP), "--gpu"], base_env(tmp_path))
    assert done.returncode == 2 and "unknown argument '--gpu'" in done.stderr


# --- run_model.sh: the engine must be there before serving -----------------------------------


def serve_stub(tmp: Path, hide_vllm: bool) -> dict[str, str]:
    """An environment where `python` is this interpreter, `python serve.py ...` only prints its
    arguments, and (hide_vllm) `vllm` cannot be found or imported."""
    bin_dir = tmp / "stub-bin"
    _script(
        bin_dir / "python",
        'if [ "$1" = serve.py ]; then echo "SERVE $*"; exit 0; fi\n'
        f'exec {shlex.quote(sys.executable)} "$@"\n',
    )
    env = base_env(bin_dir, VIRTUAL_ENV=str(tmp))  # set: run_model.sh activates no .venv
    env.pop("PYTHONPATH", None)
    if hide_vllm:
        blocker = tmp / "no-vllm"
        blocker.mkdir()
        (blocker / "sitecustomize.py").write_text(
            "import sys\n\n\n"
            "class NoVllm:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'vllm':\n"
            "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n\n\n"
            "sys.meta_path.insert(0, NoVllm())\n",
            encoding="utf-8",
        )
        env["PYTHONPATH"] = str(blocker)
    return env


def test_run_model_without_vllm_stops_with_the_ways_to_get_it(tmp_path: Path) -> None:
    done = run(["bash", str(RUN_MODEL), "--port", "8123"], serve_stub(tmp_path, hide_vllm=True))
    assert done.returncode != 0
    assert "SERVE" not in done.stdout
    err = done.stderr
    assert "engine setting is 'auto', which needs vLLM" in err
    for way in (
        "bash run_model.sh --setup",
        "pip install -r requirements/gpu.txt",
        "docker build",
        "bash run_model.sh --engine transformers",
    ):
        assert way in err


@pytest.mark.parametrize(
    ("args", "extra"),
    [
        (["--port", "8123"], {"ENGINE": "transformers"}),
        (["--engine", "transformers", "--port", "8123"], {"ENGINE": "vllm"}),  # flags win
        (["--help"], {}),  # serve.py's help, not the check
        (["--port", "8123"], {"ENGINE": "not-an-engine"}),  # serve.py names the bad setting
    ],
)
def test_run_model_goes_on_to_serve_when_vllm_is_not_needed(
    tmp_path: Path, args: list[str], extra: dict[str, str]
) -> None:
    env = serve_stub(tmp_path, hide_vllm=True)
    env.update(extra)
    done = run(["bash", str(RUN_MODEL), *args], env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "SERVE serve.py " + " ".join(args)


def test_run_model_serves_when_vllm_is_installed(tmp_path: Path) -> None:
    env = serve_stub(tmp_path, hide_vllm=False)
    has = run([sys.executable, "-c", "import importlib.util as u; print(u.find_spec('vllm'))"], env)
    if has.stdout.strip() == "None":
        pytest.skip("this interpreter has no vllm")
    done = run(["bash", str(RUN_MODEL), "--port", "8123"], env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "SERVE serve.py --port 8123"
