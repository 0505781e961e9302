"""The tuner's records: atomic JSON files, one JSONL line per finished trial, the study summary
(reference, best feasible trial, counts) and `best_params.json` / `best.env`.

    python -m qaserve.tuning.store sqlite:///tune_out/optuna.db qaserve   # a study's summary

The Optuna database is the truth; the JSONL is its human-greppable copy and is completed from
the database on every start, so a line lost to `kill -9` comes back.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from qaserve.tuning.config import TuneConfig

FEASIBLE_EPS = 1e-9


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it: readers see the old
    file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, ensure_ascii=False, indent=1) + "\n")


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL file; a torn last line (killed mid-write) is skipped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def threshold(acc: float, acc_drop: float | None, reference_acc: float | None) -> float:
    """The accuracy a trial needs: ACC, and with ACC_DROP also the reference's minus the drop."""
    if acc_drop is None or reference_acc is None:
        return acc
    return max(acc, reference_acc - acc_drop)


def interrupted(trial: Any) -> bool:
    """Stopped or killed during its run: marked so when it started (a kill runs no code), or
    ended by the next run's recovery without any result (killed before it was marked)."""
    attrs = trial.user_attrs
    if "interrupted" in attrs:
        return bool(attrs["interrupted"])
    return bool(trial.state.name == "FAIL" and "result" not in attrs)


def is_counted(trial: Any) -> bool:
    """Finished trials count toward N_TRIALS; interrupted ones (killed, stopped) do not."""
    name = trial.state.name
    return name == "COMPLETE" or (name == "FAIL" and not interrupted(trial))


def find_twin(finished: list[Any], params: dict[str, Any]) -> Any:
    """A finished trial that ran exactly these settings (TPE re-proposes some): its result is
    reused instead of starting a server again. Interrupted trials and the reference don't count."""
    for trial in finished:
        attrs = trial.user_attrs
        if trial.params == params and not attrs.get("reference") and not interrupted(trial):
            return trial
    return None


def trial_row(study: str, trial: Any, acc_threshold: float) -> dict[str, Any]:
    """One trial as a flat, greppable record (what the JSONL, the report and mails show)."""
    attrs = trial.user_attrs
    result = attrs.get("result") or {}
    metrics = result.get("metrics") or {}
    ok = trial.state.name == "COMPLETE"
    accuracy = metrics.get("accuracy_grader")
    error = result.get("error") or attrs.get("error")
    if trial.state.name == "FAIL" and interrupted(trial):
        error = error or "interrupted (the tuner was stopped or killed during this trial)"
    return {
        "study": study,
        "trial": trial.number,
        "state": trial.state.name,
        "kind": "interrupted" if interrupted(trial) else result.get("kind"),
        "reference": bool(attrs.get("reference")),
        "retry_of": attrs.get("retry_of"),
        "duplicate_of": attrs.get("duplicate_of"),
        "params": dict(trial.params),
        "env": attrs.get("overrides", {}),
        "chars_per_s": trial.value if ok else None,
        "chars_per_s_std": metrics.get("chars_per_s_std"),
        "chars_per_s_min": metrics.get("chars_per_s_min"),
        "chars_per_s_max": metrics.get("chars_per_s_max"),
        "accuracy_grader": accuracy,
        "accuracy_grader_std": metrics.get("accuracy_grader_std"),
        "accuracy_grader_lo": metrics.get("accuracy_grader_lo"),
        "accuracy_grader_hi": metrics.get("accuracy_grader_hi"),
        "accuracy_cjk": metrics.get("accuracy_cjk"),
        "tokens_per_s": metrics.get("tokens_per_s"),
        "acc_threshold": acc_threshold,
        "feasible": bool(ok and accuracy is not None and accuracy >= acc_threshold - FEASIBLE_EPS),
        "startup_s": result.get("startup_s"),
        "seconds": result.get("seconds"),
        "error": error,
        "log": result.get("log") or attrs.get("log"),
        "started": _iso(trial.datetime_start),
        "finished": _iso(trial.datetime_complete),
        "runs": result.get("runs", []),
    }


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat(timespec="seconds") if value else None


@dataclass
class Summary:
    """A study at a glance; rows are `trial_row`s of the finished trials."""

    study: str
    acc_threshold: float
    rows: list[dict[str, Any]] = field(default_factory=list)
    reference: dict[str, Any] | None = None
    best: dict[str, Any] | None = None

    @property
    def counts(self) -> dict[str, int]:
        kinds = [r["kind"] for r in self.rows]
        return {
            "finished": sum(1 for r in self.rows if r["kind"] != "interrupted"),
            "complete": sum(1 for r in self.rows if r["state"] == "COMPLETE"),
            "feasible": sum(1 for r in self.rows if r["feasible"]),
            "failed": sum(
                1 for r in self.rows if r["state"] == "FAIL" and r["kind"] != "interrupted"
            ),
            "interrupted": kinds.count("interrupted"),
        }

    def improvement(self) -> dict[str, Any] | None:
        """Best vs reference; `within_spread` when the gain is smaller than the two trials'
        run-to-run spreads together (then re-measure before trusting it)."""
        ref, best = self.reference, self.best
        if not ref or not best or not ref.get("chars_per_s"):
            return None
        ratio = best["chars_per_s"] / ref["chars_per_s"]
        delta = (best["accuracy_grader"] or 0.0) - (ref["accuracy_grader"] or 0.0)
        spread = (best["chars_per_s_std"] or 0.0) + (ref["chars_per_s_std"] or 0.0)
        gain = best["chars_per_s"] - ref["chars_per_s"]
        return {
            "chars_per_s_ratio": round(ratio, 4),
            "chars_per_s_pct": round(100 * (ratio - 1), 2),
            "accuracy_grader_delta": round(delta, 4),
            "within_spread": best["trial"] != ref["trial"] and abs(gain) <= spread,
        }


def summarize(study: str, trials: list[Any], acc: float, acc_drop: float | None) -> Summary:
    """Rows of every finished trial; feasibility judged with today's ACC (and ACC_DROP)."""
    finished = [t for t in trials if t.state.name in ("COMPLETE", "FAIL")]
    refs = [t for t in finished if t.user_attrs.get("reference") and t.state.name == "COMPLETE"]
    ref_acc = (
        ((refs[0].user_attrs.get("result") or {}).get("metrics") or {}).get("accuracy_grader")
        if refs
        else None
    )
    limit = threshold(acc, acc_drop, ref_acc)
    summary = Summary(study, limit, [trial_row(study, t, limit) for t in finished])
    summary.reference = next((r for r in summary.rows if r["reference"] and r["chars_per_s"]), None)
    feasible = [r for r in summary.rows if r["feasible"]]
    summary.best = max(feasible, key=lambda r: (r["chars_per_s"], -r["trial"]), default=None)
    return summary


def reconcile_jsonl(path: Path, summary: Summary) -> int:
    """Append the finished trials the JSONL lacks (lost to a kill between the database write
    and the line); the number of lines added."""
    have = {(r.get("study"), r.get("trial")) for r in read_jsonl(path)}
    missing = [r for r in summary.rows if (summary.study, r["trial"]) not in have]
    for row in missing:
        append_jsonl(path, row)
    return len(missing)


def best_params_doc(summary: Summary, fixed_env: dict[str, str]) -> dict[str, Any]:
    """What `best_params.json` holds: the best feasible trial, the reference, the gain."""
    best, ref = summary.best, summary.reference
    doc: dict[str, Any] = {
        "study": summary.study,
        "updated": now(),
        "objective": "maximise grader chars/s subject to accuracy_grader >= acc_threshold",
        "acc_threshold": summary.acc_threshold,
        "counts": summary.counts,
        "reference": _brief(ref),
        "best": None,
        "improvement": summary.improvement(),
        "fixed_env": fixed_env,
    }
    if best is None:
        doc["note"] = "no trial has met the accuracy constraint yet"
        return doc
    env = {k: v for k, v in best["env"].items() if v is not None}
    doc["best"] = {
        **(_brief(best) or {}),
        "params": best["params"],
        "env": env,
        "unset": sorted(k for k, v in best["env"].items() if v is None),
        "log": best["log"],
    }
    doc["shell"] = " ".join(f"{k}={_quote(v)}" for k, v in env.items()) + " bash run_model.sh"
    if best["reference"]:
        doc["note"] = "the reference (current settings) is the best found: keep them"
    return doc


def best_env_text(doc: dict[str, Any]) -> str:
    """`best.env`: KEY=VALUE lines for `docker run --env-file` or `set -a; . best.env`."""
    note = f": {doc['note']}" if doc.get("note") else ""
    lines = [f"# best of study {doc['study']} ({doc['updated']}){note}"]
    best = doc.get("best")
    if best:
        lines.append(
            f"# trial {best['trial']}: {best['chars_per_s']:.1f} chars/s, "
            f"accuracy {best['accuracy_grader']:.4f}"
        )
        lines += [f"{k}={v}" for k, v in best["env"].items()]
        lines += [f"# unset {k}" for k in best["unset"]]
    return "\n".join(lines) + "\n"


def _brief(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    keys = (
        "trial",
        "reference",
        "chars_per_s",
        "chars_per_s_std",
        "accuracy_grader",
        "accuracy_cjk",
        "tokens_per_s",
    )
    return {k: row[k] for k in keys}


def _quote(value: str) -> str:
    import shlex

    return shlex.quote(value)


def main(argv: list[str] | None = None) -> int:
    import optuna

    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 2:
        print("usage: python -m qaserve.tuning.store STORAGE_URL STUDY")
        return 2
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=args[1], storage=args[0])
    cfg = TuneConfig()
    summary = summarize(args[1], study.get_trials(deepcopy=False), cfg.acc, cfg.acc_drop)
    print(json.dumps(best_params_doc(summary, {}), ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
