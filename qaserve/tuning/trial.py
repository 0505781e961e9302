"""One tuning trial: start the server with the trial's environment, score it like the grader
`EVAL_RUNS` times, stop it; a failure of any step becomes a failed result, never an exception.

    python -m qaserve.tuning.trial --questions q.jsonl --env MAX_NUM_SEQS=64   # one by hand

Scoring goes through the evaluator's library (`qaserve.evaluation.run.evaluate`): grader-mode and
CJK-aware accuracy, grader chars/s and tokens/s. The server is stopped whatever happens
(process group: SIGTERM, grace, SIGKILL), and its log stays for the record.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qaserve import client as http
from qaserve.evaluation.cli import build_parser, load_sets
from qaserve.evaluation.run import evaluate, has_tokenizer, write_jsonl
from qaserve.logs import configure_logging
from qaserve.questions import QA
from qaserve.server import process as sp
from qaserve.settings import Settings, SettingsError, load_settings
from qaserve.tuning.config import TuneConfig

log = logging.getLogger(__name__)

# phase -> the server's record (pid, pgid, port, ...) while one runs, else None
PhaseHook = Callable[[str, "dict[str, Any] | None"], None]


class PortBusy(RuntimeError):
    """The fixed port stayed busy: not the trial's fault, so no failed trial is recorded."""


@dataclass
class TrialResult:
    """`kind` is "ok" or why it failed: invalid, start_failed, start_timeout, crashed,
    eval_timeout, eval_errors."""

    kind: str
    log: str
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    startup_s: float | None = None
    seconds: float = 0.0
    server: dict[str, Any] = field(default_factory=dict)
    stop: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_trial(
    env: dict[str, str],
    qas: list[QA],
    cfg: TuneConfig,
    log_path: Path,
    records_path: Path | None = None,
    on_phase: PhaseHook | None = None,
) -> TrialResult:
    """Start, score, stop; raises only PortBusy and KeyboardInterrupt (server stopped first)."""
    phase = on_phase or (lambda name, record: None)
    started = time.monotonic()
    result = TrialResult("ok", str(log_path))
    invalid = check_env(env)
    if invalid:
        return _done(result, started, "invalid", invalid)
    port = _port(cfg, phase)
    server = sp.start_server(env, log_path, port=port, append_log=True)
    log.info("server starting on %s (log %s)", server.url, log_path)
    try:
        phase("starting", server.record())
        try:
            result.startup_s = round(server.wait_ready(cfg.startup_timeout), 1)
            log.info("server ready after %.1f s", result.startup_s)
        except sp.ServerStartTimeout as exc:
            return _done(result, started, "start_timeout", f"{exc}; log tail:\n{exc.log_tail}")
        except sp.ServerStartError as exc:
            return _done(result, started, "start_failed", f"{exc}; log tail:\n{exc.log_tail}")
        result.server = _server_info(server.url)
        phase("evaluating", server.record())
        _evaluate(result, server, qas, cfg, records_path)
    finally:
        phase("stopping", server.record())
        result.stop = asdict(server.stop(cfg.stop_timeout))
        if result.stop["left"] or not result.stop["port_free"]:
            log.error("server of %s not fully stopped: %s", log_path.name, result.stop)
    return _done(result, started, result.kind, result.error)


def _done(result: TrialResult, started: float, kind: str, error: str | None) -> TrialResult:
    result.kind, result.error = kind, error
    result.seconds = round(time.monotonic() - started, 1)
    if error:
        log.warning("trial failed (%s): %s", kind, error.splitlines()[0])
    return result


def _evaluate(
    result: TrialResult, server: Any, qas: list[QA], cfg: TuneConfig, records_path: Path | None
) -> None:
    tokenizer = _tokenizer_dir(result.server.get("model_dir"))
    total = cfg.warmup_runs + cfg.eval_runs
    for i in range(total):
        kind = "warm-up" if i < cfg.warmup_runs else "measured"
        log.info("evaluation %d/%d (%s): %d questions ...", i + 1, total, kind, len(qas))
        records, summary = evaluate(
            qas,
            endpoint=server.url,
            mode=cfg.eval_mode,
            timeout_s=cfg.eval_timeout,
            tokenizer_dir=tokenizer,
        )
        if summary.errors:
            first = next(r["error"] for r in records if r["error"])
            kind = "eval_timeout" if first.startswith("RequestTimeout") else "eval_errors"
            if not server.running():
                kind = "crashed"
            result.kind = kind
            result.error = f"{summary.errors} of {summary.n} questions failed: {first}"
            if kind == "crashed":
                result.error += f"; log tail:\n{server.log_tail()}"
            return
        if i < cfg.warmup_runs:
            log.info("warm-up evaluation done: %.1f chars/s", summary.chars_per_s)
            continue
        if records_path is not None and not result.runs:
            write_jsonl(records, records_path, overwrite=True)
        result.runs.append({k: getattr(summary, k) for k in RUN_KEYS})
        log.info(
            "run %d: %.1f chars/s, accuracy %.4f",
            len(result.runs),
            summary.chars_per_s,
            summary.accuracy_grader,
        )
    result.metrics = aggregate(result.runs)


RUN_KEYS = (  # the RunSummary fields each run keeps in the study
    "n",
    "mode",
    "accuracy_grader",
    "accuracy_cjk",
    "accuracy_grader_lo",
    "accuracy_grader_hi",
    "accuracy_cjk_lo",
    "accuracy_cjk_hi",
    "chars",
    "post_seconds",
    "chars_per_s",
    "tokens",
    "tokens_per_s",
    "empty",
    "posts",
)


def aggregate(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean (and spread, over runs) of each figure the objective and the report use; the bounds
    of each accuracy's 95 % interval over the questions are averaged over the runs (greedy runs
    answer alike: they agree), None for runs stored before the intervals were."""
    out: dict[str, Any] = {"runs": len(runs)}
    for key in ("accuracy_grader", "accuracy_cjk", "chars_per_s", "tokens_per_s", "post_seconds"):
        values = [float(r[key]) for r in runs if r.get(key) is not None]
        out[key] = statistics.fmean(values) if values else None
        out[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        if key == "chars_per_s" and values:
            out["chars_per_s_min"], out["chars_per_s_max"] = min(values), max(values)
    for key in ("accuracy_grader_lo", "accuracy_grader_hi", "accuracy_cjk_lo", "accuracy_cjk_hi"):
        values = [float(r[key]) for r in runs if r.get(key) is not None]
        out[key] = statistics.fmean(values) if len(values) == len(runs) and values else None
    out["empty"] = max((int(r.get("empty") or 0) for r in runs), default=0)
    out["n"] = runs[0]["n"] if runs else 0
    return out


def check_env(env: dict[str, str]) -> str | None:
    """The server's own validation of the trial's settings, before an expensive start."""
    values = {name: env[name.upper()] for name in Settings.model_fields if name.upper() in env}
    try:
        load_settings(**values)
    except SettingsError as exc:
        return str(exc)
    return None


def _port(cfg: TuneConfig, phase: PhaseHook) -> int | None:
    """None (a free port per trial) or the fixed PORT once it is free: waited for, or its
    owner killed when the user asked for that."""
    if not cfg.port or sp.port_free(cfg.port):
        return cfg.port or None
    owners = (
        ", ".join(f"{pid} ({sp.describe(pid)})" for pid in sp.port_owners(cfg.port)) or "unknown"
    )
    if cfg.kill_port_owner:
        log.warning("port %d is busy (%s): killing its owner (--kill-port-owner)", cfg.port, owners)
        sp.kill_port_owners(cfg.port, cfg.stop_timeout)
    else:
        log.warning("port %d is busy (%s): waiting for it to be free", cfg.port, owners)
        phase("waiting_for_port", None)

    def note(waited: float) -> None:
        log.warning("port %d still busy after %.0f s", cfg.port, waited)

    if not sp.wait_port_free(cfg.port, timeout_s=cfg.port_wait, on_wait=note):
        raise PortBusy(f"port {cfg.port} still busy after {cfg.port_wait:g} s (owner: {owners})")
    return cfg.port


def _server_info(url: str) -> dict[str, Any]:
    """Engine, versions and model directory from `GET /info` (empty if it has none)."""
    info = http.server_info(url)
    if not info:
        return {}
    engine = info.get("engine") or {}
    return {
        "engine": engine.get("name"),
        "version": engine.get("version"),
        "model_dir": info.get("model_dir"),
        "smoke_model": info.get("smoke_model"),
    }


def _tokenizer_dir(model_dir: str | None) -> Path | None:
    path = Path(model_dir) if model_dir else None
    if path is not None and has_tokenizer(path):
        return path
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one trial on the current environment plus --env KEY=VALUE; print the result."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--questions", type=Path, action="append", required=True)
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--log", type=Path, default=Path("trial.log"))
    args = parser.parse_args(argv)
    configure_logging("INFO")
    qas = load_sets(build_parser().parse_args([f"--questions={q}" for q in args.questions]))
    env = {**os.environ, **dict(kv.split("=", 1) for kv in args.env)}
    result = run_trial(env, qas, TuneConfig(), args.log)
    print(json.dumps(result.as_dict(), ensure_ascii=False, indent=1))
    return 0 if result.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
