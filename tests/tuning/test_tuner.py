"""The tuner's study logic on SQLite with a fake trial runner (no server): the reference first,
the accuracy constraint, failures, resume after a kill, one finish notice, locks, secrets.

    pytest tests/tuning/test_tuner.py -q
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import optuna
import pytest

from qaserve.paths import REPO_ROOT
from qaserve.questions import QA
from qaserve.tuning import store
from qaserve.tuning import tuner as tuning
from qaserve.tuning.config import TuneConfig, load_config
from qaserve.tuning.notify import Notifier
from qaserve.tuning.paths import Locked, Paths, hold_lock
from qaserve.tuning.space import parse_space
from qaserve.tuning.store import read_jsonl
from qaserve.tuning.tuner import StudyMismatch, Tuner
from tests.support.tuning import FakeChannel, FakeRunner

QAS = [
    QA("什么是warp？", "warp 是 32 个线程", "t"),
    QA("什么是SM？", "SM 是 streaming multiprocessor", "t"),
]
SPACE = parse_space({"params": {"MAX_NUM_SEQS": [4, 8, 16, 32]}})


def speed_of(env: dict[str, str]) -> tuple[float, float] | str:
    """Faster with more sequences; accuracy drops above 8 (the reference: 50 chars/s, 0.5)."""
    seqs = int(env.get("MAX_NUM_SEQS", "0"))
    return (50.0, 0.5) if not seqs else (10.0 * seqs, 0.5 if seqs <= 8 else 0.2)


def config(tmp_path: Path, **flags: Any) -> TuneConfig:
    args = {
        "out_dir": str(tmp_path / "out"),
        "study": "s",
        "sampler": "grid",
        "acc": "0.35",
        "heartbeat_minutes": "0",
        **{k: str(v) for k, v in flags.items()},
    }
    return load_config(argparse.Namespace(**args))


def tuner(
    cfg: TuneConfig,
    runner: FakeRunner,
    channel: FakeChannel,
    monkeypatch: Any,
    space: Any = SPACE,
    qas: list[QA] = QAS,
    **kwargs: Any,
) -> Tuner:
    monkeypatch.setattr(tuning, "run_trial", runner)
    lines: list[str] = []
    t = Tuner(
        cfg,
        space,
        qas,
        base_env={"PATH": "/bin"},
        notifier=Notifier([channel]),
        progress=lines.append,
        **kwargs,
    )
    t.lines = lines  # type: ignore[attr-defined]
    return t


def load(cfg: TuneConfig) -> optuna.Study:
    return optuna.load_study(study_name=cfg.study, storage=cfg.storage_url)


def test_grid_study_reference_first_constraint_and_best(tmp_path: Path, monkeypatch: Any) -> None:
    cfg = config(tmp_path, n_trials=10)
    runner, channel = FakeRunner(speed_of), FakeChannel()
    assert tuner(cfg, runner, channel, monkeypatch).run() == 0  # grid exhausted: finished
    study = load(cfg)
    trials = study.get_trials()
    assert len(trials) == 5 and trials[0].user_attrs["reference"] and trials[0].params == {}
    assert "MAX_NUM_SEQS" not in runner.calls[0]  # the reference changes nothing
    assert {t.params.get("MAX_NUM_SEQS") for t in trials[1:]} == {4, 8, 16, 32}
    for t in trials:  # the constraint Optuna's TPE reads: <= 0 is feasible
        acc = t.user_attrs["result"]["metrics"]["accuracy_grader"]
        assert t.constraints["accuracy"] == pytest.approx(0.35 - acc)
    best = json.loads(Paths.of(cfg).best.read_text())
    assert best["best"]["params"] == {"MAX_NUM_SEQS": 8}  # 16 and 32 are faster, below ACC
    assert best["reference"]["chars_per_s"] == 50.0
    assert best["improvement"]["chars_per_s_pct"] == 60.0
    rows = read_jsonl(Paths.of(cfg).results)
    assert [r["trial"] for r in rows] == [0, 1, 2, 3, 4]
    status = json.loads(Paths.of(cfg).status.read_text())
    assert status["state"] == "finished" and status["server"] is None
    events = channel.events()
    assert events[0] == "start" and events[-1] == "finish" and events.count("finish") == 1
    assert "new_best" in events
    assert (Paths.of(cfg).report / "report.md").exists()


def test_tpe_with_constraint_runs_and_skips_twins(tmp_path: Path, monkeypatch: Any) -> None:
    cfg = config(tmp_path, n_trials=8, sampler="tpe", startup_trials=2)
    runner = FakeRunner(speed_of)
    assert tuner(cfg, runner, FakeChannel(), monkeypatch).run() == 0
    trials = load(cfg).get_trials()
    assert len(trials) == 8 and all(t.state.name == "COMPLETE" for t in trials)
    twins = [t for t in trials if "duplicate_of" in t.user_attrs]
    assert len(runner.calls) == 8 - len(twins)  # 4 choices: TPE repeats some; none ran twice
    assert len(runner.calls) <= 5


def test_failures_are_recorded_and_the_tuner_gives_up(tmp_path: Path, monkeypatch: Any) -> None:
    cfg = config(tmp_path, n_trials=10, sampler="random", fail_streak=2, max_fail_streak=3)
    channel = FakeChannel()
    code = tuner(cfg, FakeRunner(lambda env: "start_timeout"), channel, monkeypatch).run()
    assert code == 4
    rows = read_jsonl(Paths.of(cfg).results)
    assert len(rows) == 3 and all(r["state"] == "FAIL" for r in rows)
    assert all(r["kind"] == "start_timeout" and Path(r["log"]).exists() for r in rows)
    assert channel.events().count("failure_streak") == 1 and channel.events()[-1] == "gave_up"
    assert json.loads(Paths.of(cfg).status.read_text())["state"] == "gave_up"


def test_a_failed_trial_does_not_stop_the_study(tmp_path: Path, monkeypatch: Any) -> None:
    cfg = config(tmp_path, n_trials=10)
    runner = FakeRunner(lambda env: "crashed" if env.get("MAX_NUM_SEQS") == "16" else speed_of(env))
    assert tuner(cfg, runner, FakeChannel(), monkeypatch).run() == 0
    states = [t.state.name for t in load(cfg).get_trials()]
    assert states.count("FAIL") == 1 and states.count("COMPLETE") == 4


def test_resume_after_kill(tmp_path: Path, monkeypatch: Any) -> None:
    """A trial left RUNNING (the tuner was SIGKILLed in it) is marked failed and run again;
    finished trials are neither re-run nor lost, even with their JSONL lines gone."""
    cfg = config(tmp_path, n_trials=2, sampler="random")
    assert tuner(cfg, FakeRunner(speed_of), FakeChannel(), monkeypatch).run() == 0
    study = load(cfg)
    pick = next(v for v in (4, 8, 16, 32) if study.trials[1].params["MAX_NUM_SEQS"] != v)
    study.enqueue_trial({"MAX_NUM_SEQS": pick})
    killed = study.ask()  # what a kill leaves: a RUNNING trial with its parameters
    killed.suggest_categorical("MAX_NUM_SEQS", [4, 8, 16, 32])
    paths = Paths.of(cfg)
    lines = paths.results.read_text().splitlines()
    paths.results.write_text(lines[0] + "\n")  # the kill also lost a JSONL line
    before = {t.number: (t.value, t.datetime_complete) for t in study.get_trials()[:2]}

    runner = FakeRunner(speed_of)
    cfg = config(tmp_path, n_trials=3, sampler="random")
    assert tuner(cfg, runner, FakeChannel(), monkeypatch).run() == 0
    trials = load(cfg).get_trials()
    assert {t.number: (t.value, t.datetime_complete) for t in trials[:2]} == before
    assert trials[2].state.name == "FAIL" and store.interrupted(trials[2])
    assert trials[3].user_attrs["retry_of"] == 2 and trials[3].params == trials[2].params
    assert trials[3].state.name == "COMPLETE" and len(runner.calls) == 1
    rows = read_jsonl(paths.results)
    assert sorted(r["trial"] for r in rows) == [0, 1, 2, 3]
    assert next(r for r in rows if r["trial"] == 2)["kind"] == "interrupted"


def test_finish_is_notified_once(tmp_path: Path, monkeypatch: Any) -> None:
    cfg = config(tmp_path, n_trials=2, sampler="random")
    first, second = FakeChannel(), FakeChannel()
    assert tuner(cfg, FakeRunner(speed_of), first, monkeypatch).run() == 0
    runner = FakeRunner(speed_of)
    assert tuner(cfg, runner, second, monkeypatch).run() == 0
    assert first.events().count("finish") == 1
    assert second.events() == [] and runner.calls == []  # finished: nothing runs, nothing sent
    cfg = config(tmp_path, n_trials=3, sampler="random")  # a larger budget: one more, one notice
    third = FakeChannel()
    assert tuner(cfg, FakeRunner(speed_of), third, monkeypatch).run() == 0
    assert third.events().count("finish") == 1 and len(load(cfg).get_trials()) == 3


def test_stop_file_and_lock(tmp_path: Path, monkeypatch: Any) -> None:
    cfg = config(tmp_path, n_trials=5, sampler="random")
    paths = Paths.of(cfg)
    paths.root.mkdir(parents=True)
    with hold_lock(paths.lock), pytest.raises(Locked, match="another tuner"):
        tuner(cfg, FakeRunner(speed_of), FakeChannel(), monkeypatch).run()
    paths.stop_file.touch()
    assert tuner(cfg, FakeRunner(speed_of), FakeChannel(), monkeypatch).run() == 0
    assert len(load(cfg).get_trials()) == 1 and not paths.stop_file.exists()
    assert json.loads(paths.status.read_text())["state"] == "stopped"


def test_changed_questions_are_refused(tmp_path: Path, monkeypatch: Any) -> None:
    cfg = config(tmp_path, n_trials=1, sampler="random")
    assert tuner(cfg, FakeRunner(speed_of), FakeChannel(), monkeypatch).run() == 0
    cfg = config(tmp_path, n_trials=2, sampler="random")
    with pytest.raises(StudyMismatch, match="questions"):
        tuner(cfg, FakeRunner(speed_of), FakeChannel(), monkeypatch, qas=QAS[:1]).run()
    allowed = tuner(
        cfg, FakeRunner(speed_of), FakeChannel(), monkeypatch, qas=QAS[:1], allow_changes=True
    )
    assert allowed.run() == 0


def test_secrets_stay_out_of_servers_and_files(tmp_path: Path, monkeypatch: Any) -> None:
    secrets = {
        "SMTP_PASSWORD": "pw-SECRET-1",
        "FEISHU_WEBHOOK": "https://hook/SECRET-2",
        "FEISHU_SECRET": "SECRET-3",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    cfg = config(tmp_path, n_trials=2, sampler="random")
    runner = FakeRunner(speed_of)
    monkeypatch.setattr(tuning, "run_trial", runner)
    t = Tuner(cfg, SPACE, QAS, notifier=Notifier([FakeChannel()]), progress=lambda line: None)
    assert t.run() == 0
    assert runner.calls and not any(name in env for env in runner.calls for name in secrets)
    for path in Paths.of(cfg).root.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".env", ".md", ".log"):
            text = path.read_text(encoding="utf-8")
            assert not any(value in text for value in secrets.values()), path


def test_only_optunas_public_api() -> None:
    """The tuner works with any Optuna its sets allow: no private attributes of studies or
    trials (`study._storage`, `trial._trial_id`, ...)."""
    for path in (REPO_ROOT / "qaserve" / "tuning").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for private in ("._storage", "._trial_id", "._study_id", "optuna._"):
            assert private not in text, f"{path.name} uses {private}"
