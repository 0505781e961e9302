"""Running the model tools as users do, against the loopback fake hub (fake_hub.py): one
process per run (the SDK reads MODELSCOPE_ENDPOINT once per process), an environment without
our settings or the developer's hub variables, the SDKs' homes in a scratch folder.

    run = run_tool("download_model.py", "--model_name", "qa/tiny", cwd=tmp, endpoint=hub.url)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from qaserve.paths import REPO_ROOT as REPO
from qaserve.settings import Settings
from qaserve.settings_doc import env_names
from tests.support.fake_hub import FakeHub

TOKEN = "ms-test-token-5f1c9e"  # the fake hub's one valid token
WRONG_TOKEN = "ms-wrong-token-77ad20"
_OURS = {name for field in Settings.model_fields for name in env_names(field)}
# the one call the fake leaves unanswered: the SDK's Alibaba-cloud region probe (a 404 is fine)
UNSERVED_OK = {"/api/v1/repos/internalAccelerationInfo"}


def linked_copy(src: Path, dest: Path, extra: dict[str, str] | None = None) -> Path:
    """A model folder of hard links to `src` (no 80 MB copies), plus `extra` small files."""
    dest.mkdir(parents=True)
    for path in src.iterdir():
        os.link(path, dest / path.name)
    for name, text in (extra or {}).items():
        (dest / name).write_text(text, encoding="utf-8")
    return dest


def closed_port_url() -> str:
    """An endpoint where nothing listens: every connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def tool_env(tmp: Path, endpoint: str, **extra: str) -> dict[str, str]:
    """The caller's environment without our settings or hub variables, the SDKs' homes in tmp."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key.upper() not in _OURS and not key.upper().startswith(("MODELSCOPE_", "HF_"))
    }
    env.update(
        MODELSCOPE_ENDPOINT=endpoint,
        MODELSCOPE_CACHE=str(tmp / "sdk" / "ms-cache"),
        MODELSCOPE_HOME=str(tmp / "sdk" / "ms-home"),
        HF_HOME=str(tmp / "sdk" / "hf-home"),
        HF_ENDPOINT=endpoint,
        MODELSCOPE_REPO_TREE_PAGE_MAX_ATTEMPTS="1",  # no-network runs fail at once
        LOG_LEVEL="DEBUG",  # token checks run at full verbosity: ours and the SDK's
        MODELSCOPE_LOG_LEVEL="10",  # (the SDK wants a number)
    )
    env.update(extra)
    return env


def run_tool(
    script: str, *args: str, cwd: Path, endpoint: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """`python <script> args...` in `cwd`, as a user runs it."""
    return subprocess.run(
        [sys.executable, str(REPO / script), *args],
        cwd=cwd,
        env=tool_env(cwd, endpoint, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def make_hub(blob_dir: Path, models: dict[str, Path]) -> FakeHub:
    hub = FakeHub(blob_dir, token=TOKEN)
    hub.add_model("qa/tiny", models["master"])
    hub.add_model("qa/tiny", models["v1.0"], revision="v1.0")
    hub.add_model("qa/private", models["master"], private=True)
    hub.add_model("qa/draft", models["master"])
    return hub.start()
