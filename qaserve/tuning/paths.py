"""Where a study's files live, the lock that keeps one tuner per study, and the Optuna storage.

    python -m qaserve.tuning.paths          # print the configured study's paths

OUT_DIR/STUDY/ holds tune_results.jsonl, best_params.json, best.env, tune_status.json,
tune_server_logs/, tune_records/ (each trial's answers), report/, and the lock file; touching
OUT_DIR/STUDY/STOP ends the run after the current trial.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from qaserve.questions import QA
from qaserve.tuning.config import TuneConfig, load_config

SQLITE_TIMEOUT_S = 60  # another process (a report, a dashboard) may hold the database briefly


class Locked(RuntimeError):
    """Another tuner process holds this study."""


@dataclass(frozen=True)
class Paths:
    root: Path
    results: Path
    best: Path
    best_env: Path
    status: Path
    logs: Path
    records: Path
    report: Path
    lock: Path
    stop_file: Path

    @classmethod
    def of(cls, cfg: TuneConfig) -> Paths:
        root = cfg.study_dir
        return cls(
            root=root,
            results=root / "tune_results.jsonl",
            best=root / "best_params.json",
            best_env=root / "best.env",
            status=root / "tune_status.json",
            logs=root / "tune_server_logs",
            records=root / "tune_records",
            report=root / "report",
            lock=root / ".tune.lock",
            stop_file=root / "STOP",
        )


@contextlib.contextmanager
def hold_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` for as long as the block runs (the kernel drops it when the
    process dies, even by SIGKILL); raise Locked when another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "?"
            raise Locked(f"another tuner (pid {holder}) is running this study") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def storage(url: str) -> Any:
    """An Optuna storage for `url`; for SQLite, its folder is created and writers wait."""
    import optuna

    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT_S}}
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
    return url


def masked_url(url: str) -> str:
    """A storage URL without its password (`postgresql://user:***@host/db`)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def questions_digest(qas: list[QA]) -> str:
    """Tells whether a resumed study scores the same questions."""
    text = json.dumps([[qa.question, qa.answer] for qa in qas], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


if __name__ == "__main__":
    paths = Paths.of(load_config())
    print(json.dumps({k: str(v) for k, v in asdict(paths).items()}, indent=1))
