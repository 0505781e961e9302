"""The `auto_tune.py` command: check the inputs, run or resume the study, or write its report.

    python auto_tune.py --questions held_out.jsonl --n-trials 40 --acc 0.35
    python auto_tune.py --report            # plots + Markdown summary of the study so far
    python auto_tune.py --check             # validate settings, space and questions; run nothing

Exit codes (run_autotune_forever.sh restarts only on 1): 0 finished, time limit or STOP file;
1 crashed or the fixed port stayed busy; 2 bad settings, space or questions (or a predecessor
flag with no equivalent); 3 another tuner runs this study; 4 gave up after
TUNE_MAX_FAIL_STREAK failed trials in a row; 130 stopped by a signal.

The predecessor's tuner flags (`--accuracy_threshold`, `--dry_run`, `--skip_existing`, ...) are
read as their replacements or refused naming them: `PREDECESSOR_FLAGS`, README "Coming from the
predecessor toolkit".
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from qaserve.evaluation.cli import build_parser as eval_parser
from qaserve.evaluation.cli import load_sets
from qaserve.logs import configure_logging
from qaserve.paths import REPO_ROOT
from qaserve.questions import QA
from qaserve.tuning.config import (
    TuneConfig,
    add_config_flags,
    load_config,
    predecessor_warnings,
    variables,
)
from qaserve.tuning.notify import summary_lines
from qaserve.tuning.paths import Locked, Paths, storage
from qaserve.tuning.report import write_report
from qaserve.tuning.space import SpaceError, load_space
from qaserve.tuning.store import summarize
from qaserve.tuning.tuner import StudyMismatch, Tuner

log = logging.getLogger(__name__)


OUTPUTS = "outputs live in tune_out/<study>/ (--out-dir, --study)"
NOTES = "notes go out for new bests, failures, heartbeats (--heartbeat-minutes) and the end"


def _secret(field: str) -> str:
    names = " or ".join(variables(field))
    return f"secrets are read from the environment only: set {names} (tune_secrets.sh)"


def _this_checkout(value: Any) -> str | None:
    if Path(str(value)).expanduser().resolve() == REPO_ROOT:
        return None  # the trial servers run from here anyway
    return (
        f"trial servers run from this checkout ({REPO_ROOT}); run auto_tune.py or "
        "auto_tune.sh from the checkout to tune"
    )


def _feishu_only(value: Any) -> str | None:
    if str(value).strip().lower() in ("feishu", "lark"):
        return None
    return "only Feishu/Lark bot webhooks are sent here (FEISHU_WEBHOOK): drop --webhook_kind"


def _port_wait(old: Mapping[str, Any]) -> float:
    """Its retries x wait, each from its flag, else its variable, else its default (3, 10 s)."""
    retries = old.get("--port_busy_retries") or os.environ.get("TUNE_PORT_BUSY_RETRIES") or 3
    wait = old.get("--port_busy_wait_s") or os.environ.get("TUNE_PORT_BUSY_WAIT_S") or 10
    return float(retries) * float(wait)


@dataclass(frozen=True)
class Old:
    """How one predecessor flag is read: as our flag `to` (through `value`, which sees every
    predecessor flag given), as nothing (`to` None), or refused with the message `refused`
    returns (exit 2). `nargs` 0: a switch; "?": an optional value."""

    to: str | None = None
    value: Callable[[Any, Mapping[str, Any]], Any] | None = None
    nargs: int | str | None = None
    refused: Callable[[Any], str | None] | None = None


def _refused(why: str, nargs: int | str | None = "?") -> Old:
    return Old(nargs=nargs, refused=lambda value: why)


# The predecessor's auto_tune.py flags beyond the ones ours already spell alike (--port,
# --eval_runs, --startup_timeout, --eval_timeout, --smtp_host/_port/_user, --search_space_file):
# read with the same meaning, or refused with what replaced them. Our own flag wins where both
# are given; flags beat variables.
PREDECESSOR_FLAGS: dict[str, Old] = {
    "--accuracy_threshold": Old("acc"),
    "--dry_run": Old("check", lambda v, old: True, nargs=0),
    "--skip_existing": Old(nargs=0),  # a study resumes by itself: done trials are never rerun
    "--heartbeat_interval_s": Old("heartbeat_minutes", lambda v, old: float(v) / 60),
    "--port_busy_retries": Old("port_wait", lambda v, old: _port_wait(old)),
    "--port_busy_wait_s": Old("port_wait", lambda v, old: _port_wait(old)),
    "--port_busy_kill": Old("kill_port_owner", nargs="?"),
    "--smtp_from": Old("mail_from"),
    "--smtp_to": Old("mail_to", lambda v, old: [v]),
    "--smtp_ssl": Old("smtp_security", lambda v, old: "ssl", nargs=0),
    "--smtp_no_starttls": Old(
        "smtp_security", lambda v, old: "ssl" if "--smtp_ssl" in old else "none", nargs=0
    ),
    "--webhook_kind": Old(refused=_feishu_only),
    "--repo": Old(refused=_this_checkout),
    "--results": _refused(f"{OUTPUTS}: each trial is a line of tune_results.jsonl there"),
    "--best": _refused(f"{OUTPUTS}: best_params.json (and best.env) there"),
    "--status_file": _refused(f"{OUTPUTS}: tune_status.json there"),
    "--server_log_dir": _refused(f"{OUTPUTS}: tune_server_logs/ there"),
    "--cooldown": _refused(
        "no pause between trials: the next server starts once the last one has exited and "
        "freed its port (--stop-timeout bounds its stop)"
    ),
    "--heartbeat_trials": _refused("heartbeats are timed: --heartbeat-minutes"),
    "--notify_trial_done": _refused(f"no note per trial; {NOTES}"),
    "--notify_trial_done_every": _refused(f"no note per trial; {NOTES}"),
    "--email_kinds": _refused(f"e-mail gets every note the webhook gets; {NOTES}"),
    "--smtp_pass": _refused(_secret("smtp_password")),
    "--webhook_url": _refused(_secret("feishu_webhook")),
    "--feishu_secret": _refused(_secret("feishu_secret")),
    "--selftest": _refused(
        "test the notifications with `python -m qaserve.tuning.notify hello`; check the "
        "inputs without running a trial with --check",
        nargs=0,
    ),
    "--selftest_notify": _refused(
        "test the notifications with `python -m qaserve.tuning.notify hello`", nargs=0
    ),
}


class _PredecessorFlag(argparse.Action):
    """Refuse the flag at once, or note its value for `_translate`."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        flag = self.option_strings[0]
        spec = PREDECESSOR_FLAGS[flag]
        value = True if self.nargs == 0 else values  # a switch: on
        why = spec.refused(value) if spec.refused else None
        if why:
            parser.exit(2, f"{parser.prog}: {flag} (the predecessor's) is not accepted: {why}\n")
        setattr(namespace, self.dest, {**getattr(namespace, self.dest, {}), flag: value})


class _Parser(argparse.ArgumentParser):
    """Our flags, then the predecessor flags given translated into them."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        parsed, rest = super().parse_known_args(args, namespace)
        try:
            _translate(parsed)
        except ValueError as exc:
            self.error(str(exc))
        return parsed, rest


def _translate(args: argparse.Namespace) -> None:
    old: dict[str, Any] = vars(args).pop("predecessor_flags", {})
    ours = {name for name, value in vars(args).items() if value not in (None, False)}
    for flag, raw in old.items():
        spec = PREDECESSOR_FLAGS[flag]
        if spec.to is None or spec.to in ours:
            continue
        try:
            value = spec.value(raw, old) if spec.value else raw
        except ValueError as exc:
            raise ValueError(f"{flag} {raw}: {exc}") from None
        setattr(args, spec.to, value)


def _predecessor_help() -> str:
    read = [f for f, spec in PREDECESSOR_FLAGS.items() if spec.to or not spec.refused]
    refused = [f for f, spec in PREDECESSOR_FLAGS.items() if spec.refused]
    return (
        f"The predecessor's flags {', '.join(read)} are read as ours; {', '.join(refused)} "
        "are refused, naming what replaced them (README: Coming from the predecessor toolkit)."
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="auto_tune.py",
        description="Find the fastest server settings (grader chars/s) whose grader accuracy "
        "stays at least ACC. Flags beat the [VARIABLES] shown, which beat defaults.",
        epilog=_predecessor_help(),
    )
    add_config_flags(parser)
    parser.add_argument("--report", action="store_true", help="write the study's report, exit")
    parser.add_argument("--report-dir", type=Path, help="report folder (OUT_DIR/STUDY/report)")
    parser.add_argument("--check", action="store_true", help="check the inputs and exit")
    parser.add_argument(
        "--allow-changes",
        action="store_true",
        help="resume a study although its search space or questions changed",
    )
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING"))
    for flag, spec in PREDECESSOR_FLAGS.items():
        parser.add_argument(
            flag,
            action=_PredecessorFlag,
            dest="predecessor_flags",
            nargs=spec.nargs,
            const=True if spec.nargs == "?" else None,
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )
    return parser


def load_questions(cfg: TuneConfig) -> list[QA]:
    """The question set through the evaluator's own loader: files, else the sample docx sets;
    with TUNE_MAX_N a fixed (seeded) random subset."""
    argv = ["--which", cfg.which] + [f"--questions={path}" for path in cfg.questions]
    if cfg.max_n:
        argv += ["--max-n", str(cfg.max_n), "--shuffle", "--seed", str(cfg.seed)]
    return load_sets(eval_parser().parse_args(argv))


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def report(cfg: TuneConfig, out_dir: Path | None) -> int:
    import optuna

    try:
        study = optuna.load_study(study_name=cfg.study, storage=storage(cfg.storage_url))
    except KeyError:
        print(f"no study {cfg.study!r} in {cfg.storage_url}", file=sys.stderr)
        return 2
    # the study's own accuracy limit, unless ACC/--acc (or ACC_DROP) says otherwise here
    attrs = study.user_attrs
    given = cfg.model_fields_set
    acc = cfg.acc if "acc" in given or attrs.get("acc") is None else float(attrs["acc"])
    acc_drop = cfg.acc_drop if "acc_drop" in given else attrs.get("acc_drop", cfg.acc_drop)
    summary = summarize(cfg.study, study.get_trials(deepcopy=False), acc, acc_drop)
    paths = Paths.of(cfg)
    for path in write_report(study, summary, out_dir or paths.report):
        print(f"report: {path}")
    target = int(study.user_attrs.get("n_trials", cfg.n_trials))  # the last run's budget
    print("\n".join(summary_lines(summary, target, paths.best)))
    return 0


def main(argv: list[str] | None = None) -> int:
    import optuna

    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    logging.getLogger("qaserve.client").setLevel(logging.WARNING)  # a line per POST is noise here
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own line per trial says more
    try:
        cfg = load_config(args)
        for line in predecessor_warnings(os.environ):
            logging.getLogger(__name__).warning("%s", line)
        if args.report:
            return report(cfg, args.report_dir)
        space = load_space(cfg.search_space_file)
        qas = load_questions(cfg)
    except (OSError, ValueError) as exc:  # SpaceError and bad settings are ValueErrors
        print(f"auto_tune: {exc}", file=sys.stderr)
        return 2
    print(
        f"study {cfg.study}: {len(space.params)} parameters from {space.source}, "
        f"{len(qas)} questions, outputs in {cfg.study_dir}",
        flush=True,
    )
    if args.check:
        print(f"settings: {cfg.shown()}")
        return 0
    previous = {sig: signal.signal(sig, _stop_on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    tuner = Tuner(
        cfg,
        space,
        qas,
        progress=lambda line: print(line, flush=True),
        allow_changes=args.allow_changes,
    )
    try:
        return tuner.run()
    except Locked as exc:
        print(f"auto_tune: {exc}", file=sys.stderr)
        return 3
    except (StudyMismatch, SpaceError) as exc:
        print(f"auto_tune: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
