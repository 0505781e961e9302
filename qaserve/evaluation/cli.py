"""The `eval_local.py` command line: pick the question sets, wait for the server, evaluate, show.

    python eval_local.py --which basic --save_jsonl artifacts/run.jsonl --report artifacts/run

Exit status: 0 when every question got an answer, 1 if some failed, 2 on bad usage, 3 when
the server is not ready. The asking and scoring are `qaserve.evaluation.run.evaluate`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qaserve import client as http
from qaserve.evaluation.compare import compare_runs, compare_table, load_records
from qaserve.evaluation.report import summary_table, write_report
from qaserve.evaluation.run import (
    MODES,
    Progress,
    clients,
    evaluate,
    has_tokenizer,
    resolve_mode,
    write_jsonl,
)
from qaserve.evaluation.summary import RunSummary
from qaserve.logs import configure_logging
from qaserve.paths import REPO_ROOT as ROOT
from qaserve.questions import QA, load_questions, read_docx, select
from qaserve.settings import SettingsError, load_settings

log = logging.getLogger(__name__)

HELDOUT = ROOT / "data_heldout.jsonl"  # what the bundled demo model was not trained on
DEFAULT_DOCX = {  # the predecessor kept its samples in the repository root
    "basic": ("data/basic.docx", "basic.docx", "../shared/data/basic.docx"),
    "bonus": ("data/plus.docx", "data/bonus.docx", "plus.docx", "../shared/data/plus.docx"),
}
GRADER_PREDICT_S = 360  # the grader's time limit for all POSTs together
TOKENIZER_HELP = "count answer tokens with this model's tokenizer (default: MODEL_DIR)"
QUESTIONS_HELP = "question file (docx/jsonl/json/txt/csv; repeatable): replaces the docx sets"


def build_parser() -> argparse.ArgumentParser:
    """Kebab-case flags; the predecessor's snake_case spellings are kept as aliases."""
    parser = argparse.ArgumentParser(
        prog="eval_local.py", description="Score a running server like the grader does."
    )

    def add(flag: str, **kwargs: Any) -> None:
        names = [flag.replace("_", "-"), flag] if "_" in flag else [flag]
        parser.add_argument(*names, **kwargs)

    add("--which", choices=("basic", "bonus", "all"), default="all", help="docx set(s) (all)")
    for name, candidates in DEFAULT_DOCX.items():
        add(f"--{name}_docx", type=Path, metavar="PATH", help=f"default: first of {candidates}")
    add("--questions", type=Path, action="append", metavar="PATH", help=QUESTIONS_HELP)
    add("--mode", choices=MODES, default="auto", help="auto (default): batch if `GET /` says so")
    add("--batch", action="store_true", help="same as --mode batch")
    add("--concurrency", type=int, default=8, metavar="N", help="clients in --mode concurrent (8)")
    add(
        "--endpoint",
        default="http://127.0.0.1:8000",
        help="server URL (default: %(default)s; a trailing /predict is dropped)",
    )
    add(
        "--health",
        nargs="?",
        const=True,
        metavar="URL",
        help="alone: check `GET /` once and exit; with a URL (the predecessor's form): "
        "print what it answers once, then evaluate",
    )
    add("--sleep", type=float, default=0.0, metavar="S", help="pause between sequential requests")
    add(
        "--runs",
        type=int,
        default=1,
        metavar="N",
        help="ask the same questions N times: chars/s as median and range over the runs "
        "(accuracy, records and report from the first) (1)",
    )
    add("--wait", type=float, metavar="S", help="wait for readiness first (60; --health: 0)")
    add("--timeout", type=float, default=360.0, metavar="S", help="per-request timeout (360)")
    add("--max_n", type=int, metavar="N", help="ask at most N questions (all sets; 0: all)")
    add("--dedupe", action="store_true", help="drop repeated questions")
    add("--shuffle", action="store_true", help="shuffle before --max_n")
    add("--seed", type=int, default=0, metavar="N", help="seed of --shuffle (0)")
    add("--strip_q_suffix", action="store_true", help="strip a trailing 请简要回答-like suffix")
    add("--save_jsonl", type=Path, metavar="PATH", help="write one record per question")
    add("--overwrite_jsonl", action="store_true", help="allow --save_jsonl to replace a file")
    add("--model_dir_for_tokenizer", type=Path, metavar="DIR", help=TOKENIZER_HELP)
    add("--report", type=Path, metavar="DIR", help="write report.md, report.html and plots")
    add("--compare", type=Path, nargs=2, metavar=("A", "B"), help="compare two JSONL runs, exit")
    add("--debug_first_n", type=int, default=0, metavar="N", help="print the first N answers")
    add("--debug_random_n", type=int, default=0, metavar="N", help="print N random answers")
    add("--debug_random_seed", type=int, default=0, metavar="N", help="seed of --debug-random-n")
    add(
        "--log_level",
        default="WARNING",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="qaserve log level (WARNING)",
    )
    return parser


def load_sets(args: argparse.Namespace) -> list[QA]:
    """The questions the flags name: `--questions` files, else the `--which` docx sets."""
    qas: list[QA] = []
    if args.questions:  # the file's name is the set's name
        for path in args.questions:
            qas += [dataclasses.replace(qa, source=path.stem) for qa in load_questions(path)]
    else:
        names = ("basic", "bonus") if args.which == "all" else (args.which,)
        for name in names:
            path = getattr(args, f"{name}_docx") or _first_existing(DEFAULT_DOCX[name])
            if path is None and args.which == "all":
                log.warning("no %s set found (tried %s): skipped", name, DEFAULT_DOCX[name])
                continue
            if path is None:
                raise FileNotFoundError(f"no {name} set: pass --{name}-docx or --questions")
            qas += [dataclasses.replace(qa, source=name) for qa in read_docx(path)]
        if not qas:
            raise FileNotFoundError("no question set found: pass --basic-docx or --questions")
    max_n = args.max_n or None  # 0: all of them, as the predecessor read it
    return select(qas, dedupe=args.dedupe, max_n=max_n, shuffle=args.shuffle, seed=args.seed)


def base_url(endpoint: str) -> str:
    """The server's base URL: the predecessor's --endpoint named the /predict route itself."""
    url = endpoint.rstrip("/")
    return url[: -len("/predict")] if url.endswith("/predict") else url


def _first_existing(candidates: tuple[str, ...]) -> Path | None:
    for name in candidates:
        for base in (Path.cwd(), ROOT):
            if (base / name).is_file():
                return base / name
    return None


def tokenizer_dir(args: argparse.Namespace) -> Path | None:
    """`--model_dir_for_tokenizer`, else MODEL_DIR (through settings) when it holds a tokenizer."""
    if args.model_dir_for_tokenizer is not None:
        return Path(args.model_dir_for_tokenizer)
    try:
        model_dir = load_settings().model_dir
    except SettingsError as exc:
        log.warning("no token counts: %s", exc)
        return None
    if model_dir is None:
        return None
    if not has_tokenizer(model_dir):
        log.warning("no token counts: MODEL_DIR=%s holds no tokenizer", model_dir)
        return None
    return model_dir


def main(argv: list[str] | None = None) -> int:
    """The `eval_local.py` command; exit 0 when every question got an answer, 1 if some
    failed, 2 on bad usage, 3 when the server is not ready."""
    from rich.console import Console
    from rich.markup import escape

    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    console = Console()
    args.endpoint = base_url(args.endpoint)
    if args.compare:
        try:
            a, b = (load_records(path) for path in args.compare)
        except (OSError, ValueError) as exc:
            parser.error(str(exc))
        console.print(compare_table(compare_runs(a, b)))
        return 0
    if isinstance(args.health, str):  # the predecessor's --health URL: shown, then on
        try:
            console.print_json(data=http.health(args.health.rstrip("/")))
        except http.ClientError as exc:
            console.print(f"[yellow]health {escape(args.health)}: {escape(str(exc))}")
    elif args.health:
        try:
            console.print_json(data=http.wait_ready(args.endpoint, args.wait or 0))
        except http.ClientError as exc:
            console.print(f"[bold red]{escape(str(exc))}")
            return 3
        return 0
    if args.save_jsonl and args.save_jsonl.exists() and not args.overwrite_jsonl:
        parser.error(f"{args.save_jsonl} exists: pass --overwrite-jsonl to replace it")
    default_sets = not args.questions
    try:
        qas, missing = load_sets(args), None
    except (OSError, ValueError) as exc:
        if not default_sets:
            parser.error(str(exc))
        qas, missing = [], exc  # no docx sets here: a demo-model server brings its own set
    if not default_sets and not qas:
        parser.error("no questions to ask")
    tokenizer = tokenizer_dir(args)
    if tokenizer is not None and not tokenizer.is_dir():
        parser.error(f"--model-dir-for-tokenizer {tokenizer}: not a directory")
    try:
        http.wait_ready(args.endpoint, 60.0 if args.wait is None else args.wait)
    except http.ServerNotReady as exc:
        console.print(f"[bold red]{escape(str(exc))}")
        return 3
    info = http.server_info(args.endpoint)
    if default_sets and info.get("demo_model") and HELDOUT.is_file():
        log.info("the server runs the bundled demo model: scoring its held-out set %s", HELDOUT)
        args.questions = [HELDOUT]
        qas = load_sets(args)
    elif missing is not None:
        parser.error(str(missing))
    if not qas:
        parser.error("no questions to ask")
    served = Path(info.get("model_dir") or "/nonexistent")
    if tokenizer is None and has_tokenizer(served):
        tokenizer = served  # the server's own model, on this machine
    mode = resolve_mode(args.endpoint, "batch" if args.batch else args.mode)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    with _progress_bar(mode, args.concurrency, len(qas), args.timeout) as bar:
        runs = [
            evaluate(
                qas,
                endpoint=args.endpoint,
                mode=mode,
                concurrency=args.concurrency,
                timeout_s=args.timeout,
                tokenizer_dir=tokenizer,
                strip_q_suffix=args.strip_q_suffix,
                progress=bar,
                sleep_s=args.sleep,
            )
            for _ in range(args.runs)
        ]
    records, summary = runs[0]
    if args.runs > 1:
        summary = summary.with_speeds([s.chars_per_s or 0.0 for _, s in runs])
    if args.save_jsonl:  # the report takes both: `... report X.jsonl --summary X.summary.json`
        write_jsonl(records, args.save_jsonl, overwrite=args.overwrite_jsonl)
        summary.write(args.save_jsonl.with_suffix(".summary.json"))
    _show(console, args, records, summary)
    return 1 if summary.errors else 0


def _show(console: Any, args: argparse.Namespace, records: list[dict], summary: RunSummary) -> None:
    from rich.markup import escape
    from rich.panel import Panel
    from rich.text import Text

    picked = records[: args.debug_first_n]
    if args.debug_random_n:
        k = min(args.debug_random_n, len(records))
        picked += random.Random(args.debug_random_seed).sample(records, k)
    for r in picked:
        parts = [("Q ", "bold"), r["question"], ("\nref ", "bold"), r["ref"]]
        parts += [("\npred ", "bold"), str(r["pred_raw"]), ("\nerror ", "red"), str(r["error"])]
        title = (
            f"#{r['index']} {r['set']} grader {r['rougeL_f1_raw']:.3f} cjk {r['rougeL_f1_cjk']:.3f}"
        )
        console.print(Panel(Text.assemble(*parts[: 8 if r["error"] else 6]), title=title))
    console.print(summary_table(summary))
    if summary.errors:
        first = escape(next(r["error"] for r in records if r["error"]))
        console.print(
            f"[bold red]{summary.errors} of {summary.n} questions FAILED (server error or "
            f"timeout): scored as empty answers; the grader would fail this submission.\n"
            f"First error: {first}"
        )
    seconds = summary.post_seconds or 0.0
    if seconds > GRADER_PREDICT_S:
        over = f"POSTs took {seconds:.0f} s, over the grader's {GRADER_PREDICT_S} s"
        console.print(f"[bold yellow]{over}")
    if args.save_jsonl:
        console.print(f"records: {args.save_jsonl}")
    if args.report:
        for path in write_report(records, summary, args.report):
            console.print(f"report: {path}")


@contextmanager
def _progress_bar(
    mode: str, concurrency: int, questions: int, timeout_s: float
) -> Iterator[Progress | None]:
    """The terminal's progress: questions answered one by one, or for a batch (one POST that
    can take minutes) the seconds it has run against its timeout, on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    if mode == "batch":
        columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
        with Bar(*columns, console=Console(stderr=True)) as bar:
            label = f"1 POST of {questions} questions, timeout {timeout_s:.0f} s"
            task = bar.add_task(label, total=timeout_s)
            yield lambda _done, _total, seconds: bar.update(task, completed=min(seconds, timeout_s))
            bar.update(task, description=label.replace("1 POST", "answered: 1 POST"))
        return
    workers = clients(mode, concurrency)
    with Bar(console=Console(stderr=True)) as bar:
        task = bar.add_task("sequential" if workers == 1 else f"{workers} clients", total=None)
        yield lambda done, total, _seconds: bar.update(task, completed=done, total=total)
