"""The predecessor tuner's secrets file, variables, flags and flat search-space file work here
(or its flags are refused, naming what replaced them), and the console takes its API_BASE_URL
and WEBUI_SHARE (issue 20).

    pytest tests/tuning/test_predecessor_tuner.py -q
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from qaserve.paths import REPO_ROOT
from qaserve.tuning.cli import PREDECESSOR_FLAGS, build_parser
from qaserve.tuning.config import TuneConfig, env_names, load_config, predecessor_warnings
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


# its auto_tune.py flags, as PREDECESSOR.md section 6 lists them
ITS_FLAGS = [
    "--repo", "--port", "--eval_runs", "--startup_timeout", "--eval_timeout", "--cooldown",
    "--accuracy_threshold", "--results", "--best", "--server_log_dir", "--status_file",
    "--heartbeat_trials", "--heartbeat_interval_s", "--port_busy_retries", "--port_busy_wait_s",
    "--port_busy_kill", "--notify_trial_done", "--notify_trial_done_every", "--smtp_host",
    "--smtp_port", "--smtp_user", "--smtp_pass", "--smtp_from", "--smtp_to", "--smtp_no_starttls",
    "--smtp_ssl", "--email_kinds", "--webhook_url", "--feishu_secret", "--webhook_kind",
    "--skip_existing", "--dry_run", "--selftest", "--selftest_notify", "--search_space_file",
]  # fmt: skip


def parsed(*argv: str) -> tuple[TuneConfig, bool]:
    """(settings, --check) of an auto_tune.py command line."""
    args = build_parser().parse_args(list(argv))
    return load_config(args), args.check


def test_every_predecessor_flag_is_read_or_refused() -> None:
    assert set(ITS_FLAGS) <= set(build_parser()._option_string_actions)
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Coming from the predecessor") :]
    assert [f for f in ITS_FLAGS if f"`{f}" not in section] == []


def test_predecessor_command_line_parses_to_the_same_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg, check = parsed(
        "--repo", str(REPO_ROOT), "--port", "8000", "--eval_runs", "5", "--startup_timeout", "240",
        "--eval_timeout", "420", "--accuracy_threshold", "0.88", "--heartbeat_interval_s", "1800",
        "--port_busy_retries", "3", "--port_busy_wait_s", "20", "--port_busy_kill",
        "--smtp_host", "smtp.163.com", "--smtp_port", "465", "--smtp_user", "me@163.com",
        "--smtp_from", "me@163.com", "--smtp_to", "me@163.com,you@163.com", "--smtp_ssl",
        "--webhook_kind", "feishu", "--search_space_file", "space.json", "--skip_existing",
    )  # fmt: skip
    assert not check
    assert (cfg.port, cfg.eval_runs, cfg.startup_timeout, cfg.eval_timeout) == (8000, 5, 240, 420)
    assert (cfg.acc, cfg.heartbeat_minutes, cfg.port_wait, cfg.kill_port_owner) == (
        0.88, 30.0, 60.0, True,
    )  # fmt: skip
    assert (cfg.smtp_host, cfg.smtp_port, cfg.smtp_security) == ("smtp.163.com", 465, "ssl")
    assert (cfg.smtp_user, cfg.mail_from) == ("me@163.com", "me@163.com")
    assert cfg.mail_to == ["me@163.com", "you@163.com"]
    assert str(cfg.search_space_file) == "space.json"
    assert parsed("--dry_run")[1] is True  # its dry run: ours checks the inputs, runs nothing
    assert parsed("--port_busy_kill", "0")[0].kill_port_owner is False
    monkeypatch.setenv("TUNE_PORT_BUSY_RETRIES", "2")  # its variable times its flag
    assert parsed("--port_busy_wait_s", "15")[0].port_wait == 30.0
    assert parsed("--port_busy_wait_s", "15", "--port-wait", "5")[0].port_wait == 5.0


@pytest.mark.parametrize(
    ("argv", "security"),
    [
        (["--smtp_no_starttls"], "none"),
        (["--smtp_no_starttls", "--smtp_ssl"], "ssl"),
        (["--smtp_port", "587"], "starttls"),  # its default was STARTTLS
        (["--smtp_ssl", "--smtp-security", "starttls"], "starttls"),  # ours wins
        ([], "ssl"),
    ],
)
def test_predecessor_smtp_security_flags(argv: list[str], security: str) -> None:
    assert parsed(*argv)[0].smtp_security == security


def test_our_flag_wins_over_its_spelling() -> None:
    assert parsed("--accuracy_threshold", "0.5", "--acc", "0.3")[0].acc == 0.3
    assert (
        parsed("--heartbeat-minutes", "5", "--heartbeat_interval_s", "60")[0].heartbeat_minutes == 5
    )


@pytest.mark.parametrize(
    ("argv", "replacement"),
    [
        (["--results", "r.jsonl"], "tune_out/<study>/ (--out-dir, --study)"),
        (["--best", "b.json"], "best_params.json"),
        (["--status_file", "s.json"], "tune_status.json"),
        (["--server_log_dir", "logs"], "tune_server_logs/"),
        (["--cooldown", "1.0"], "--stop-timeout"),
        (["--heartbeat_trials", "10"], "--heartbeat-minutes"),
        (["--notify_trial_done"], "new bests, failures, heartbeats"),
        (["--notify_trial_done_every", "5"], "no note per trial"),
        (["--email_kinds", "best,done"], "every note the webhook gets"),
        (["--smtp_pass", "pw"], "SMTP_PASSWORD or TUNE_SMTP_PASS"),
        (["--webhook_url", "https://x/hook"], "FEISHU_WEBHOOK or LARK_WEBHOOK or TUNE_WEBHOOK_URL"),
        (["--feishu_secret", "s"], "FEISHU_SECRET or LARK_SECRET or TUNE_FEISHU_SECRET"),
        (["--selftest"], "python -m qaserve.tuning.notify"),
        (["--selftest_notify"], "python -m qaserve.tuning.notify"),
        (["--webhook_kind", "generic"], "only Feishu/Lark"),
        (["--repo", "/elsewhere"], "run auto_tune.py or auto_tune.sh from the checkout"),
        (["--eval_runs", "3", "--results", "r.jsonl", "--acc", "x"], "tune_results.jsonl"),
    ],
)
def test_refused_flag_exits_2_naming_its_replacement(
    argv: list[str], replacement: str, capsys: pytest.CaptureFixture[str]
) -> None:
    flag = next(a for a in argv if a in PREDECESSOR_FLAGS)
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1  # one line, no usage block
    assert err.startswith(f"auto_tune.py: {flag} ") and replacement in err


def test_auto_tune_sh_takes_predecessor_flags(tmp_path: Path, questions_file: Path) -> None:
    out = tmp_path / "out"

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        cmd = ["bash", str(REPO_ROOT / "auto_tune.sh"), *argv, "--out_dir", str(out)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    done = run("--skip_existing", "--dry_run", "--accuracy_threshold", "0.4",
               "--questions", str(questions_file))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "'acc': 0.4" in done.stdout and not out.exists()  # nothing ran
    refused = run("--results", "tune_results.jsonl")
    assert refused.returncode == 2 and "--out-dir" in refused.stderr
