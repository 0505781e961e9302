"""The `auto_tune.py` command: check the inputs, run or resume the study, or write its report.

    python auto_tune.py --questions held_out.jsonl --n-trials 40 --acc 0.35
    python auto_tune.py --report            # plots + Markdown summary of the study so far
    python auto_tune.py --check             # validate settings, space and questions; run nothing

Exit codes (run_autotune_forever.sh restarts only on 1): 0 finished, time limit or STOP file;
1 crashed or the fixed port stayed busy; 2 bad settings, space or questions; 3 another tuner
runs this study; 4 gave up after TUNE_MAX_FAIL_STREAK failed trials in a row; 130 stopped
by a signal.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType

from qaserve.evaluation.cli import build_parser as eval_parser
from qaserve.evaluation.cli import load_sets
from qaserve.logs import configure_logging
from qaserve.questions import QA
from qaserve.tuning.config import (
    TuneConfig,
    add_config_flags,
    load_config,
    predecessor_warnings,
)
from qaserve.tuning.notify import summary_lines
from qaserve.tuning.paths import Locked, Paths, storage
from qaserve.tuning.report import write_report
from qaserve.tuning.space import SpaceError, load_space
from qaserve.tuning.store import summarize
from qaserve.tuning.tuner import StudyMismatch, Tuner

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="auto_tune.py",
        description="Find the fastest server settings (grader chars/s) whose grader accuracy "
        "stays at least ACC. Flags beat the [VARIABLES] shown, which beat defaults.",
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
