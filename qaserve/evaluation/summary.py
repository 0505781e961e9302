"""The summary of one evaluation run: its figures, named once, and the JSON file that holds them.

    python -m qaserve.evaluation.report runs/eval.jsonl --summary runs/eval.summary.json

`eval_local.py --save-jsonl X.jsonl` writes `X.summary.json`, the web console's batch test a
`summary.json`: both hold `RunSummary.as_dict()`. Files of other versions read back: fields they
lack keep their defaults, keys unknown here are kept in `others` and written back unchanged.
Each accuracy has its 95 % bootstrap interval over the questions (`*_lo`, `*_hi`; None in files
written before the intervals were).
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qaserve.evaluation.scoring import bootstrap_interval, grader_speed, mean

SCORE_KEYS = {"grader": "rougeL_f1_raw", "cjk": "rougeL_f1_cjk"}  # accuracy: the record's field


def record_score(record: dict[str, Any], key: str) -> float:
    """A record's score field as a number (0.0 where an older tool's record lacks it)."""
    value = record.get(key)
    return float(value) if isinstance(value, (int, float)) else 0.0


def accuracies(records: list[dict[str, Any]]) -> dict[str, Any]:
    """accuracy_grader, accuracy_cjk and their bootstrap intervals (`_lo`, `_hi`)."""
    out: dict[str, Any] = {}
    for metric, key in SCORE_KEYS.items():
        scores = [record_score(r, key) for r in records]
        out[f"accuracy_{metric}"] = mean(scores)
        out[f"accuracy_{metric}_lo"], out[f"accuracy_{metric}_hi"] = bootstrap_interval(scores)
    return out


REPEAT_FIELDS = ("runs", "chars_per_s_median", "chars_per_s_min", "chars_per_s_max")


@dataclass
class RunSummary:
    """The figures of one run, in the order summary.json lists them. A summary rebuilt from
    per-question records alone knows no timings: those fields (and mode, endpoint...) are None."""

    n: int = 0
    mode: str | None = None
    accuracy_grader: float = 0.0
    accuracy_cjk: float = 0.0
    accuracy_grader_lo: float | None = None  # the 95 % bootstrap interval over the questions
    accuracy_grader_hi: float | None = None
    accuracy_cjk_lo: float | None = None
    accuracy_cjk_hi: float | None = None
    chars: int = 0
    post_seconds: float | None = None  # Σ wall time of the POSTs: the grader's divisor
    chars_per_s: float | None = None
    tokens: int | None = None
    tokens_per_s: float | None = None
    errors: int = 0
    empty: int = 0  # answered "" (failed questions are counted in errors only)
    endpoint: str | None = None
    started: str | None = None
    posts: int | None = None
    wall_s: float | None = None  # differs from post_seconds with concurrent clients
    wall_chars_per_s: float | None = None
    concurrency: int | None = None
    sets: dict[str, int] | None = None
    # with `eval_local.py --runs N`: the same questions N times, chars/s over them (the
    # accuracy is the first run's); left out of the file and tables for one run
    runs: int | None = None
    chars_per_s_median: float | None = None
    chars_per_s_min: float | None = None
    chars_per_s_max: float | None = None
    others: dict[str, Any] = field(default_factory=dict)  # keys of another version's file

    @classmethod
    def from_records(cls, records: list[dict[str, Any]]) -> RunSummary:
        """What the per-question records say: scores, characters, errors, empty answers."""
        return cls(
            n=len(records),
            **accuracies(records),
            chars=sum(len(r.get("pred_raw") or "") for r in records),
            errors=sum(1 for r in records if r.get("error")),
            empty=sum(
                1 for r in records if not r.get("error") and not (r.get("pred_raw") or "").strip()
            ),
        )

    @classmethod
    def of_run(
        cls,
        records: list[dict[str, Any]],
        *,
        mode: str,
        endpoint: str,
        started: str,
        post_seconds: list[float],
        wall_s: float,
        concurrency: int,
        token_counts: list[int] | None,
    ) -> RunSummary:
        """The records' figures plus the run's: the grader's speed over the POSTs' wall time."""
        speed = grader_speed([r.get("pred_raw") or "" for r in records], post_seconds, token_counts)
        return dataclasses.replace(
            cls.from_records(records),
            mode=mode,
            post_seconds=speed.seconds,
            chars_per_s=speed.chars_per_s,
            tokens=speed.tokens,
            tokens_per_s=speed.tokens_per_s,
            endpoint=endpoint,
            started=started,
            posts=len(post_seconds),
            wall_s=wall_s,
            wall_chars_per_s=speed.chars / wall_s if wall_s > 0 else 0.0,
            concurrency=concurrency,
            sets=dict(Counter(r["set"] for r in records)),
        )

    def with_intervals(self, records: list[dict[str, Any]]) -> RunSummary:
        """This summary, its missing accuracy intervals taken from the records (an older file)."""
        if self.accuracy_grader_lo is not None or not records:
            return self
        found = accuracies(records)
        return dataclasses.replace(
            self, **{k: v for k, v in found.items() if k.endswith(("_lo", "_hi"))}
        )

    def interval(self, metric: str) -> tuple[float, float] | None:
        """(low, high) of `accuracy_<metric>` ("grader" or "cjk"), None where not known."""
        low, high = getattr(self, f"accuracy_{metric}_lo"), getattr(self, f"accuracy_{metric}_hi")
        return None if low is None or high is None else (low, high)

    def as_dict(self) -> dict[str, Any]:
        """The JSON object of summary.json: the fields in order (the repeat figures only when
        there were repeats), then the unknown keys."""
        names = [f.name for f in dataclasses.fields(self) if f.name != "others"]
        if self.runs is None:
            names = [n for n in names if n not in REPEAT_FIELDS]
        return {**{name: getattr(self, name) for name in names}, **self.others}

    def with_speeds(self, chars_per_s: list[float]) -> RunSummary:
        """This (the first run's) summary with the speed of every run: median, lowest, highest."""
        return dataclasses.replace(
            self,
            runs=len(chars_per_s),
            chars_per_s_median=statistics.median(chars_per_s),
            chars_per_s_min=min(chars_per_s),
            chars_per_s_max=max(chars_per_s),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        names = {f.name for f in dataclasses.fields(cls)} - {"others"}
        known = {k: v for k, v in data.items() if k in names}
        return cls(**known, others={k: v for k, v in data.items() if k not in names})

    def write(self, path: Path) -> None:
        text = json.dumps(self.as_dict(), ensure_ascii=False, indent=1)
        Path(path).write_text(text + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> RunSummary:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a run summary is a JSON object")
        return cls.from_dict(data)
