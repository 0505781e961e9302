"""The overnight auto-tuner: find the server settings with the highest grader chars/s whose
grader accuracy stays at least `ACC`, over an Optuna study that survives any stop.

    ./auto_tune.sh                          # or: python auto_tune.py --n-trials 40 --report

The first trial is the reference (the current settings: no override). Each trial starts the
server with its settings, scores it `EVAL_RUNS` times and stops it (`tuning_trial`). The study
lives in SQLite: a rerun with the same study name resumes it; finished trials are never re-run;
a trial the tuner was killed in is marked failed ("interrupted") and run again as a new trial.
Outputs under OUT_DIR/STUDY: tune_results.jsonl, best_params.json, best.env, tune_status.json,
tune_server_logs/, report/ (`tuning_store`, `tuning_report`).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qaserve.questions import QA
from qaserve.server.process import stop_recorded
from qaserve.tuning import notify, store
from qaserve.tuning.config import TuneConfig, env_names
from qaserve.tuning.notify import Message, Notifier
from qaserve.tuning.paths import Paths, hold_lock, masked_url, questions_digest, read_json, storage
from qaserve.tuning.report import write_report
from qaserve.tuning.space import SearchSpace, overrides_env, trial_env
from qaserve.tuning.store import Summary, now
from qaserve.tuning.trial import PortBusy, TrialResult, run_trial

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # runs of one trial's settings interrupted by a stop or kill, at most


class TrialFailed(Exception):
    """The trial's settings failed (start, crash, timeout, errors): recorded, study goes on."""


class StudyMismatch(ValueError):
    """The stored study was run on another search space or question set."""


class Tuner:
    """One run of the tuner on one study; `run()` returns the process exit code."""

    def __init__(
        self,
        cfg: TuneConfig,
        space: SearchSpace,
        qas: list[QA],
        *,
        base_env: dict[str, str] | None = None,
        notifier: Notifier | None = None,
        progress: Callable[[str], None] | None = None,
        allow_changes: bool = False,
    ) -> None:
        self.cfg, self.space, self.qas = cfg, space, qas
        env = dict(os.environ if base_env is None else base_env)
        self.base_env = {k: v for k, v in env.items() if k not in env_names()}  # no secrets
        self.notifier = notifier or Notifier.from_config(cfg)
        self.progress = progress or (lambda line: log.info("%s", line))
        self.allow_changes = allow_changes
        self.paths = Paths.of(cfg)
        self.started, self.started_iso = time.monotonic(), now()
        self.current: dict[str, Any] | None = None
        self.stop_reason: str | None = None
        self.streak = 0
        self.best_trial: int | None = None
        self.last_heartbeat = time.monotonic()
        self.study: Any = None

    # --- the run --------------------------------------------------------------------------

    def run(self) -> int:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        with hold_lock(self.paths.lock):
            self.study = self._open_study()
            summary = self._recover()
            self.best_trial = summary.best["trial"] if summary.best else None
            if self._done(summary):
                return self._wrap_up(summary, "finished")
            self._publish(summary, "starting")
            self._notify(
                "start",
                notify.start_lines(summary, self.cfg, len(self.space.params), len(self.qas)),
            )
            timeout = self.cfg.max_hours * 3600 if self.cfg.max_hours else None
            try:
                self.study.optimize(
                    self.objective,
                    callbacks=[self.after_trial],
                    catch=(TrialFailed,),
                    timeout=timeout,
                )
            except (KeyboardInterrupt, PortBusy) as exc:
                summary = self._summary()
                self._publish(summary, "stopped", state="stopped", error=repr(exc))
                self.progress(f"stopped ({exc!r}); rerun to resume the study")
                return 1 if isinstance(exc, PortBusy) else 130
            return self._wrap_up(self._summary(), self.stop_reason or self._why_returned())

    def _why_returned(self) -> str:
        limit = self.cfg.max_hours
        if limit and time.monotonic() - self.started >= limit * 3600:
            return "time_limit"
        return "finished" if self.cfg.sampler == "grid" else "time_limit"  # grid exhausted

    def _wrap_up(self, summary: Summary, reason: str) -> int:
        finished = reason == "finished"
        if finished and "finished_at" not in self.study.user_attrs:
            self.study.set_user_attr("finished_at", now())
        if finished:
            self._write_report()
        state = {"finished": "finished", "gave_up": "gave_up"}.get(reason, "stopped")
        self._publish(summary, "done", state=state, error=reason)
        lines = [
            f"reason: {reason}",
            *notify.summary_lines(summary, self.cfg.n_trials, self.paths.best),
        ]
        if finished and self.study.user_attrs.get("finish_notified") != self.cfg.n_trials:
            self._notify("finish", lines)
            self.study.set_user_attr("finish_notified", self.cfg.n_trials)  # once per study
        elif reason == "gave_up":
            self._notify("gave_up", lines)
        self.progress(f"{state}: " + "; ".join(lines))
        return 4 if reason == "gave_up" else 0

    # --- the study --------------------------------------------------------------------------

    def _open_study(self) -> Any:
        import optuna

        study = optuna.create_study(
            study_name=self.cfg.study,
            storage=storage(self.cfg.storage_url),
            direction="maximize",
            load_if_exists=True,
        )
        study.sampler = self._sampler(len(study.get_trials(deepcopy=False)))
        attrs = study.user_attrs
        facts = {
            "space_digest": self.space.digest(),
            "questions_digest": questions_digest(self.qas),
        }
        for key, value in facts.items():
            if key in attrs and attrs[key] != value and not self.allow_changes:
                raise StudyMismatch(
                    f"study {self.cfg.study!r} was run with another {key.split('_')[0]} "
                    f"({attrs[key]} != {value}): use another --study, or --allow-changes"
                )
        for key, value in {
            **facts,
            "space": self.space.canonical(),
            "n_questions": len(self.qas),
            "created": attrs.get("created", now()),
        }.items():
            study.set_user_attr(key, value)
        if attrs.get("acc") not in (None, self.cfg.acc):
            log.warning(
                "ACC changed from %s to %s: feasibility is re-judged", attrs["acc"], self.cfg.acc
            )
        study.set_user_attr("acc", self.cfg.acc)
        study.set_user_attr("acc_drop", self.cfg.acc_drop)
        study.set_user_attr("n_trials", self.cfg.n_trials)
        return study

    def _sampler(self, n_trials_so_far: int) -> Any:
        import optuna

        seed = self.cfg.seed + n_trials_so_far  # a resumed run must not replay the same draws
        if self.cfg.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if self.cfg.sampler == "grid":
            return optuna.samplers.GridSampler(self.space.grid(), seed=seed)
        with warnings.catch_warnings():  # multivariate/group are flagged experimental
            warnings.simplefilter("ignore")
            legacy = None if hasattr(optuna.trial.Trial, "set_constraint") else _constraints
            return optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=self.cfg.startup_trials,
                multivariate=True,
                group=True,
                constraints_func=legacy,
            )

    def _recover(self) -> Summary:
        """After a stop or kill: end a leftover server, mark the trial it was in as interrupted,
        queue its settings again, queue the reference once, complete the JSONL."""
        from optuna.trial import TrialState

        leftover = (read_json(self.paths.status) or {}).get("server")
        if leftover:
            stopped = stop_recorded(leftover, self.cfg.stop_timeout)
            if stopped:
                self.progress(f"stopped a leftover server of the last run: pids {stopped}")
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            # Optuna's public API: a trial left running by a killed tuner is ended by its number
            # (it was marked "interrupted" when it started; see _objective)
            self.study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            self.progress(f"trial {t.number} was interrupted: marked failed, will run again")
        trials = self.study.get_trials(deepcopy=False)
        retried = {t.user_attrs.get("retry_of") for t in trials}
        for t in trials:
            attempt = int(t.user_attrs.get("attempt", 1))
            again = store.interrupted(t) and t.number not in retried
            if again and attempt < MAX_ATTEMPTS:
                attrs = {
                    "retry_of": t.number,
                    "attempt": attempt + 1,
                    "reference": bool(t.user_attrs.get("reference")),
                }
                self.study.enqueue_trial(dict(t.params), user_attrs=attrs)
        if not any(t.user_attrs.get("reference") for t in trials):
            self.study.enqueue_trial({}, user_attrs={"reference": True})
        summary = self._summary()
        added = store.reconcile_jsonl(self.paths.results, summary)
        if added:
            log.info("added %d finished trials missing from %s", added, self.paths.results)
        return summary

    def _summary(self) -> Summary:
        trials = self.study.get_trials(deepcopy=False)
        return store.summarize(self.cfg.study, trials, self.cfg.acc, self.cfg.acc_drop)

    def _done(self, summary: Summary) -> bool:
        counted = sum(1 for t in self.study.get_trials(deepcopy=False) if store.is_counted(t))
        grid_done = self.cfg.sampler == "grid" and "finished_at" in self.study.user_attrs
        return counted >= self.cfg.n_trials or grid_done

    # --- one trial --------------------------------------------------------------------------

    def objective(self, trial: Any) -> float:
        from optuna.trial import TrialState

        reference = bool(trial.user_attrs.get("reference"))
        params = {} if reference else self.space.suggest(trial)
        overrides = overrides_env(params)
        trial.set_user_attr("overrides", overrides)
        done = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
        twin = None if reference else store.find_twin(done, params)
        if twin is not None:
            return self._copy(trial, twin)
        log_path = self.paths.logs / f"trial-{trial.number:04d}.log"
        trial.set_user_attr("log", str(log_path))
        self.current = {
            "number": trial.number,
            "reference": reference,
            "env": overrides,
            "log": str(log_path),
            "started": now(),
        }
        self.progress(f"trial {trial.number} starting: {notify.changes(overrides)}")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(
            f"# trial {trial.number}: {notify.changes(overrides)}\n", encoding="utf-8"
        )
        env = trial_env(self.base_env, self.space.env, overrides)
        records = self.paths.records / f"trial-{trial.number:04d}.jsonl"
        # interrupted until it ends: a kill (no code runs then), a stop (Ctrl-C) or a busy port
        # leave it marked so, and it runs again; any other failure is the trial's own
        trial.set_user_attr("interrupted", True)
        try:
            result = run_trial(env, self.qas, self.cfg, log_path, records, self._on_phase)
        except PortBusy:
            raise
        except Exception:
            trial.set_user_attr("interrupted", False)
            raise
        trial.set_user_attr("interrupted", False)
        trial.set_user_attr("result", result.as_dict())
        return self._score(trial, result, reference)

    def _score(self, trial: Any, result: TrialResult, reference: bool) -> float:
        if not result.ok:
            raise TrialFailed(f"{result.kind}: {(result.error or '').splitlines()[0][:200]}")
        accuracy = float(result.metrics["accuracy_grader"])
        ref = self._summary().reference
        ref_accuracy = accuracy if reference else ref["accuracy_grader"] if ref else None
        limit = store.threshold(self.cfg.acc, self.cfg.acc_drop, ref_accuracy)
        trial.set_user_attr("acc_threshold", limit)
        if hasattr(trial, "set_constraint"):  # Optuna 5; older: TPE's constraints_func
            trial.set_constraint("accuracy", limit - accuracy)
        return float(result.metrics["chars_per_s"])

    def _copy(self, trial: Any, twin: Any) -> float:
        trial.set_user_attr("duplicate_of", twin.number)
        trial.set_user_attr("result", twin.user_attrs.get("result"))
        trial.set_user_attr("log", twin.user_attrs.get("log"))
        self.progress(f"trial {trial.number}: same settings as trial {twin.number}, not re-run")
        result = TrialResult(**(twin.user_attrs.get("result") or {"kind": "missing", "log": ""}))
        return self._score(trial, result, reference=False)

    def _on_phase(self, phase: str, server: dict[str, Any] | None) -> None:
        self._publish(None, phase, server=server)

    def after_trial(self, study: Any, frozen: Any) -> None:
        self.current = None
        summary = self._summary()
        row = next(r for r in summary.rows if r["trial"] == frozen.number)
        store.append_jsonl(self.paths.results, row)
        self._publish(summary, "idle")
        if not row["duplicate_of"]:  # a reused failure says nothing new about the setup
            self.streak = self.streak + 1 if row["state"] == "FAIL" else 0
        counted = summary.counts["finished"]
        self.progress(notify.progress_line(row, summary, self.cfg.n_trials))
        self._notify_after(row, summary)
        if self.streak >= self.cfg.max_fail_streak:
            self.stop_reason = "gave_up"
        elif counted >= self.cfg.n_trials:
            self.stop_reason = "finished"
        elif self.paths.stop_file.exists():
            self.paths.stop_file.unlink()
            self.stop_reason = "stop_file"
        if self.stop_reason:
            study.stop()

    # --- outputs ----------------------------------------------------------------------------

    def _notify_after(self, row: dict[str, Any], summary: Summary) -> None:
        best = summary.best
        if best and best["trial"] != self.best_trial:
            self.best_trial = best["trial"]
            self._notify(
                "new_best", [notify.describe_row(best), notify.gain_line(summary.improvement())]
            )
        if self.streak and self.streak % self.cfg.fail_streak == 0:
            failed = [r for r in summary.rows if r["state"] == "FAIL"][-self.streak :]
            lines = [
                f"{self.streak} failed trials in a row",
                *map(notify.describe_row, failed[-3:]),
            ]
            self._notify("failure_streak", lines)
        minutes = self.cfg.heartbeat_minutes
        if minutes and time.monotonic() - self.last_heartbeat >= minutes * 60:
            self.last_heartbeat = time.monotonic()
            self._notify(
                "heartbeat", notify.summary_lines(summary, self.cfg.n_trials, self.paths.best)
            )

    def _notify(self, event: str, lines: list[str]) -> None:
        if self.notifier.channels:
            self.notifier.send(Message(event, self.cfg.study, lines))

    def _publish(
        self,
        summary: Summary | None,
        phase: str,
        *,
        state: str = "running",
        server: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """tune_status.json (and, given a summary, best_params.json and best.env)."""
        progress = (read_json(self.paths.status) or {}).get("progress")
        if summary is not None:
            best = store.best_params_doc(summary, self.space.env)
            store.write_json_atomic(self.paths.best, best)
            store.write_text_atomic(self.paths.best_env, store.best_env_text(best))
            progress = {
                "counts": {**summary.counts, "target": self.cfg.n_trials},
                "eta_s": notify.eta(summary, self.cfg.n_trials),
                **{key: best[key] for key in ("best", "reference", "improvement")},
            }
        doc = {
            "study": self.cfg.study,
            "state": state,
            "phase": phase,
            "message": error,
            "trial": self.current,
            "server": server,  # what a resumed run stops if this process was killed
            "progress": progress,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": self.started_iso,
            "updated": now(),
            "storage": masked_url(self.cfg.storage_url),
        }
        store.write_json_atomic(self.paths.status, doc)

    def _write_report(self) -> list[Path]:
        try:
            return write_report(self.study, self._summary(), self.paths.report)
        except Exception:  # a plot must never cost the night's results
            log.exception("could not write the report")
            return []


def _constraints(trial: Any) -> list[float]:
    """Older Optuna (no Trial.set_constraint): TPE asks this after each complete trial."""
    metrics = (trial.user_attrs.get("result") or {}).get("metrics") or {}
    limit = trial.user_attrs.get("acc_threshold", 0.0)
    return [float(limit) - float(metrics.get("accuracy_grader") or 0.0)]
