"""The predecessor tuner's secrets file, variables and flat search-space file work here, and
the console takes its API_BASE_URL and WEBUI_SHARE (issue 20).

    pytest tests/tuning/test_predecessor_tuner.py -q
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from qaserve.tuning.config import env_names, load_config, predecessor_warnings
from qaserve.tuning.space import load_space
from qaserve.webui.app import launch_options, read_options

# its tune_secrets.example.sh, in our words: Feishu bot plus 163 mail over SSL on 465
SECRETS_SH = """\
export TUNE_WEBHOOK_URL='https://open.feishu.cn/open-apis/bot/v2/hook/abc'
export TUNE_WEBHOOK_KIND='feishu'
export TUNE_FEISHU_SECRET='s3cret'
export TUNE_SMTP_HOST='smtp.163.com'
export TUNE_SMTP_PORT='465'
export TUNE_SMTP_USER='me@163.com'
export TUNE_SMTP_PASS='app-token'
export TUNE_SMTP_FROM='me@163.com'
export TUNE_SMTP_TO='me@163.com,you@163.com'
export TUNE_SMTP_SSL='1'
export TUNE_HEARTBEAT_INTERVAL_S='1800'
export TUNE_PORT_BUSY_RETRIES='3'
export TUNE_PORT_BUSY_WAIT_S='10'
export TUNE_PORT_BUSY_KILL='1'
export HEARTBEAT_TRIALS='10'
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    names = env_names() | {"TUNE_SMTP_SSL", "TUNE_SMTP_NO_STARTTLS", "TUNE_HEARTBEAT_INTERVAL_S"}
    names |= {"HEARTBEAT_INTERVAL_S", "TUNE_PORT_BUSY_RETRIES", "TUNE_PORT_BUSY_WAIT_S"}
    for name in list(os.environ):
        if name.upper() in names:
            monkeypatch.delenv(name)


def sourced(tmp_path: Path, script: str) -> dict[str, str]:
    """The variables a user's shell has after `source tune_secrets.sh`."""
    path = tmp_path / "tune_secrets.sh"
    path.write_text(script)
    out = subprocess.run(
        ["bash", "-c", f". {path} && env -0"], capture_output=True, check=True
    ).stdout.decode()
    return dict(line.split("=", 1) for line in out.split("\0") if "=" in line)


def test_predecessor_secrets_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = sourced(tmp_path, SECRETS_SH)
    for key in ("TUNE_" + k for k in ("WEBHOOK_URL", "FEISHU_SECRET", "SMTP_HOST", "SMTP_PORT",
                                      "SMTP_USER", "SMTP_PASS", "SMTP_FROM", "SMTP_TO", "SMTP_SSL",
                                      "HEARTBEAT_INTERVAL_S", "PORT_BUSY_RETRIES",
                                      "PORT_BUSY_WAIT_S", "PORT_BUSY_KILL")):  # fmt: skip
        monkeypatch.setenv(key, env[key])
    cfg = load_config()
    assert cfg.feishu_webhook is not None and cfg.feishu_secret is not None
    assert cfg.feishu_webhook.get_secret_value().endswith("/hook/abc")
    assert (cfg.smtp_host, cfg.smtp_port, cfg.smtp_security) == ("smtp.163.com", 465, "ssl")
    assert cfg.smtp_user == "me@163.com" and cfg.mail_to == ["me@163.com", "you@163.com"]
    assert cfg.smtp_password is not None and cfg.smtp_password.get_secret_value() == "app-token"
    assert (cfg.heartbeat_minutes, cfg.port_wait, cfg.kill_port_owner) == (30.0, 30.0, True)
    assert predecessor_warnings(env) == [
        "HEARTBEAT_TRIALS=10 has no effect here: heartbeats are timed (TUNE_HEARTBEAT_MINUTES)"
    ]


def test_starttls_on_587_and_our_name_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNE_SMTP_PORT", "587")
    assert load_config().smtp_security == "starttls"
    monkeypatch.setenv("SMTP_SECURITY", "none")
    assert load_config().smtp_security == "none"


def test_flat_search_space_is_merged_into_the_defaults(tmp_path: Path) -> None:
    flat = {
        "VLLM_MAX_NUM_SEQS": [512, 768, 1024],
        "MAX_NEW_TOKENS": [32, 48, 64, 80],  # its short-answer budget
        "MAX_NEW_TOKENS_CODE": [128, 192],
        "STOP_ON_DOUBLE_NEWLINE": [0, 1],
        "STOP_STRINGS": ["<|im_end|>,<|endoftext|>", "<|im_end|>"],
        "OUTPUT_MAX_SENTENCES": [3, 4, 6, 8],
    }
    path = tmp_path / "space.json"
    path.write_text(json.dumps(flat))
    space = load_space(path)
    params = {p.name: p for p in space.params}
    assert params["MAX_NUM_SEQS"].choices == (512, 768, 1024)
    assert params["SHORT_MAX_NEW_TOKENS"].choices == (32, 48, 64, 80)
    assert params["LONG_MAX_NEW_TOKENS"].choices == (128, 192)
    assert params["STOP_ON_DOUBLE_NEWLINE"].choices == (0, 1)
    assert "GPU_MEMORY_UTILIZATION" in params  # the defaults stay


def test_console_reads_api_base_url_and_webui_share() -> None:
    args = read_options([], {"API_BASE_URL": "http://10.0.0.5:8000", "WEBUI_SHARE": "1"})
    assert args.server_url == "http://10.0.0.5:8000" and args.share is True
    assert read_options([], {}).share is False
    assert launch_options("127.0.0.1", 7860, None, args.share)["share"] is True
