"""The tuner's settings: variables, flags over variables, secrets without flags or display,
the command line's checks and exit codes (no engine).

    pytest tests/tuning/test_config.py -q
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qaserve.settings import Settings
from qaserve.tuning.cli import build_parser, main
from qaserve.tuning.config import env_names, load_config
from tests.support.tuning import write_space


def test_variables_then_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACC", "0.4")
    monkeypatch.setenv("EVAL_RUNS", "5")
    monkeypatch.setenv("TUNE_QUESTIONS", "a.jsonl, b.jsonl")
    monkeypatch.setenv("TUNE_SEARCH_SPACE_FILE", "my_space.yaml")
    cfg = load_config(build_parser().parse_args(["--eval-runs", "3", "--study", "x"]))
    assert (cfg.acc, cfg.eval_runs, cfg.study) == (0.4, 3, "x")
    assert [str(p) for p in cfg.questions] == ["a.jsonl", "b.jsonl"]
    assert str(cfg.search_space_file) == "my_space.yaml"
    assert cfg.storage_url == "sqlite:///tune_out/optuna.db" and cfg.study_dir == Path("tune_out/x")


def test_bad_values_name_variable_and_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACC", "1.5")
    with pytest.raises(ValueError, match=r"ACC \(--acc\)"):
        load_config(build_parser().parse_args([]))
    with pytest.raises(ValueError, match=r"EVAL_RUNS \(--eval-runs\)"):
        load_config(build_parser().parse_args(["--acc", "0.3", "--eval-runs", "0"]))


def test_secrets_have_no_flag_and_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    help_text = build_parser().format_help()
    for secret in ("--smtp-password", "--feishu-webhook", "--feishu-secret"):
        assert secret not in help_text
    monkeypatch.setenv("SMTP_PASSWORD", "hunter2")
    monkeypatch.setenv("FEISHU_WEBHOOK", "https://x/hook/token")
    cfg = load_config(build_parser().parse_args([]))
    shown = json.dumps(cfg.shown())
    assert "hunter2" not in shown and "token" not in shown
    assert cfg.shown()["smtp_password"] == "***" and cfg.shown()["feishu_secret"] is None
    assert set(cfg.secrets()) == {"hunter2", "https://x/hook/token"}


def test_tuner_variables_do_not_collide_with_server_settings() -> None:
    server = {name.upper() for name in Settings.model_fields}
    names = env_names()
    assert {
        "ACC",
        "EVAL_RUNS",
        "STARTUP_TIMEOUT",
        "EVAL_TIMEOUT",
        "TUNE_SEARCH_SPACE_FILE",
    } <= names
    assert not names & server


def test_cli_check_and_usage_errors(
    tmp_path: Path, questions_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    space = write_space(tmp_path / "space.json", {"MAX_NUM_SEQS": [4, 8]})
    common = ["--questions", str(questions_file), "--out-dir", str(tmp_path / "out")]
    assert main([*common, "--search-space-file", str(space), "--check"]) == 0
    assert "1 parameters" in capsys.readouterr().out
    bad = write_space(tmp_path / "bad.json", {"MAX_NUM_SEQS": [0]})
    assert main([*common, "--search-space-file", str(bad)]) == 2
    assert "MAX_NUM_SEQS=0" in capsys.readouterr().err
    assert main([*common, "--search-space-file", str(space), "--acc", "2"]) == 2
    assert main(["--questions", str(tmp_path / "none.jsonl"), "--check"]) == 2
    assert main(["--report", "--out-dir", str(tmp_path / "empty")]) == 2  # no such study


def test_switches_and_repeated_flags() -> None:
    args = ["--questions", "a.jsonl", "--questions", "b.jsonl,c.jsonl", "--kill-port-owner"]
    cfg = load_config(build_parser().parse_args(args))
    assert [p.name for p in cfg.questions] == ["a.jsonl", "b.jsonl", "c.jsonl"]
    assert cfg.kill_port_owner is True
    off = build_parser().parse_args(["--kill-port-owner", "0"])
    assert load_config(off).kill_port_owner is False
