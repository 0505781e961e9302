"""auto_tune.sh and run_autotune_forever.sh, run from a scratch copy with a fake tuner: secrets
sourced and exported, restarts after a crash only, a stop signal passed on.

    pytest tests/tuning/test_scripts.py -q
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from qaserve.paths import REPO_ROOT

REPO = REPO_ROOT
FAKE_TUNER = """
import os, signal, sys, time
from pathlib import Path
runs = Path("runs.txt")
n = len(runs.read_text().splitlines()) if runs.exists() else 0
runs.write_text("x\\n" * (n + 1))
print("SMTP_PASSWORD=" + os.environ.get("SMTP_PASSWORD", "-"), "args=" + " ".join(sys.argv[1:]))
codes = os.environ.get("FAKE_CODES", "0").split(",")
if codes[min(n, len(codes) - 1)] == "sleep":
    signal.signal(signal.SIGTERM, lambda *a: (Path("stopped.txt").write_text("yes"), sys.exit(130)))
    time.sleep(60)
sys.exit(int(codes[min(n, len(codes) - 1)]))
"""


def scratch(tmp_path: Path) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    for name in ("auto_tune.sh", "run_autotune_forever.sh"):
        shutil.copy2(REPO / name, tmp_path / name)
    (tmp_path / "auto_tune.py").write_text(FAKE_TUNER, encoding="utf-8")
    return tmp_path


def run(folder: Path, script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    full.update(RESTART_DELAY="0", **env)
    return subprocess.run(
        ["bash", str(folder / script), *args],
        cwd=folder,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
    )


def runs(folder: Path) -> int:
    return len((folder / "runs.txt").read_text().splitlines())


def test_auto_tune_sources_and_exports_secrets(tmp_path: Path) -> None:
    folder = scratch(tmp_path)
    secrets = folder / "tune_secrets.sh"
    secrets.write_text("SMTP_PASSWORD='s3cret pw'\n", encoding="utf-8")
    secrets.chmod(0o644)
    done = run(folder, "auto_tune.sh", "--report")
    assert done.returncode == 0 and "SMTP_PASSWORD=s3cret pw args=--report" in done.stdout
    assert "chmod 600" in done.stderr
    secrets.chmod(0o600)
    assert "chmod 600" not in run(folder, "auto_tune.sh").stderr


def test_forever_restarts_after_a_crash_and_stops_when_done(tmp_path: Path) -> None:
    folder = scratch(tmp_path)
    done = run(folder, "run_autotune_forever.sh", FAKE_CODES="1,1,0")
    assert done.returncode == 0 and runs(folder) == 3
    assert done.stderr.count("restart") == 2


def test_forever_does_not_restart_final_codes(tmp_path: Path) -> None:
    for code in ("2", "3", "4"):
        folder = scratch(tmp_path / code)
        done = run(folder, "run_autotune_forever.sh", FAKE_CODES=code)
        assert done.returncode == int(code) and runs(folder) == 1


def test_forever_gives_up_after_max_restarts(tmp_path: Path) -> None:
    folder = scratch(tmp_path)
    done = run(folder, "run_autotune_forever.sh", FAKE_CODES="1", MAX_RESTARTS="2")
    assert done.returncode == 1 and runs(folder) == 3 and "giving up" in done.stderr


def test_forever_passes_a_stop_signal_on(tmp_path: Path) -> None:
    folder = scratch(tmp_path)
    env = {**os.environ, "FAKE_CODES": "sleep"}
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.Popen(["bash", "run_autotune_forever.sh"], cwd=folder, env=env)
    deadline = time.monotonic() + 30
    while not (folder / "runs.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 143
    assert (folder / "stopped.txt").read_text() == "yes" and runs(folder) == 1
