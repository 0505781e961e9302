"""The auto-tuner's own settings: one typed class, read from the environment and the CLI.

    python -m qaserve.tuning.config          # print the tuner's effective settings, secrets masked

The server's settings (`qaserve/settings.py`) are what the tuner searches over; these are the
tuner's: study, objective limit (`ACC`), timeouts, question set, notification channels. Each
field reads the variable its alias names (CLI flags beat variables, which beat defaults).
Secrets (webhook URL and signing key, SMTP password) are read from the environment only
(`tune_secrets.sh`): they get no flag, are masked in every output and never reach a trial server.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from qaserve.evaluation.scoring import GRADER_PASS_LINE


def _f(default: Any, env: str, description: str, **constraints: Any) -> Any:
    """A field reading the variable(s) `env` ("A|B": either)."""
    names = AliasChoices(*env.split("|"))
    return Field(default, validation_alias=names, description=description, **constraints)


class TuneConfig(BaseSettings):
    """What the tuner does; see README "Auto-tuning"."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    study: str = _f("qaserve", "TUNE_STUDY", "Optuna study name; a rerun resumes it.", min_length=1)
    storage: str | None = _f(
        None, "TUNE_STORAGE", "Optuna storage URL (sqlite:///OUT_DIR/optuna.db)."
    )
    out_dir: Path = _f(Path("tune_out"), "TUNE_OUT_DIR", "Parent of each study's output folder.")
    search_space_file: Path = _f(
        Path("tune_space.json"),
        "TUNE_SEARCH_SPACE_FILE|SEARCH_SPACE_FILE",
        "Search space file (JSON or YAML).",
    )
    sampler: Literal["tpe", "random", "grid"] = _f("tpe", "TUNE_SAMPLER", "Optuna sampler.")
    seed: int = _f(0, "TUNE_SEED", "Sampler seed.")
    n_trials: int = _f(40, "TUNE_N_TRIALS", "Trials in the whole study, over all runs.", ge=1)
    startup_trials: int = _f(8, "TUNE_STARTUP_TRIALS", "Random trials before TPE models.", ge=1)
    max_hours: float | None = _f(None, "TUNE_MAX_HOURS", "Stop this run after so long.", gt=0)
    acc: float = _f(
        GRADER_PASS_LINE, "ACC", "Constraint: grader accuracy at least this.", ge=0, le=1
    )
    acc_drop: float | None = _f(
        None, "ACC_DROP", "Also: accuracy at most this below the reference's.", ge=0, le=1
    )
    eval_runs: int = _f(2, "EVAL_RUNS", "Measured evaluations per trial.", ge=1)
    warmup_runs: int = _f(1, "EVAL_WARMUP_RUNS", "Unmeasured evaluations before them.", ge=0)
    eval_mode: Literal["auto", "batch", "sequential", "concurrent"] = _f(
        "auto", "EVAL_MODE", "How questions are sent (auto: as the grader does)."
    )
    startup_timeout: float = _f(
        600.0, "STARTUP_TIMEOUT", "Seconds a server may take to start.", gt=0
    )
    eval_timeout: float = _f(360.0, "EVAL_TIMEOUT", "Seconds one POST /predict may take.", gt=0)
    stop_timeout: float = _f(30.0, "STOP_TIMEOUT", "Seconds from SIGTERM to SIGKILL.", gt=0)
    questions: Annotated[list[Path], NoDecode] = _f(
        [], "TUNE_QUESTIONS", "Question files, comma-separated (default: the sample docx sets)."
    )
    which: Literal["all", "basic", "bonus"] = _f("all", "TUNE_WHICH", "Sample set(s) to use.")
    max_n: int | None = _f(None, "TUNE_MAX_N", "A fixed random subset of this many.", ge=1)
    port: int = _f(0, "TUNE_PORT", "Trial servers' port (0: a free one each).", ge=0, le=65535)
    port_wait: float | None = _f(None, "TUNE_PORT_WAIT", "Wait this long for a busy PORT.", ge=0)
    kill_port_owner: bool = _f(
        False, "TUNE_KILL_PORT_OWNER|TUNE_PORT_BUSY_KILL", "Kill PORT's owner, don't wait."
    )
    fail_streak: int = _f(3, "TUNE_FAIL_STREAK", "Notify after this many failures in a row.", ge=1)
    max_fail_streak: int = _f(8, "TUNE_MAX_FAIL_STREAK", "Give up after so many in a row.", ge=1)
    heartbeat_minutes: float = _f(
        60.0, "TUNE_HEARTBEAT_MINUTES", "Progress note every (0: off).", ge=0
    )
    feishu_webhook: SecretStr | None = _f(
        None, "FEISHU_WEBHOOK|LARK_WEBHOOK|TUNE_WEBHOOK_URL", "Bot webhook URL."
    )
    feishu_secret: SecretStr | None = _f(
        None, "FEISHU_SECRET|LARK_SECRET|TUNE_FEISHU_SECRET", "Bot signing secret."
    )
    smtp_host: str | None = _f(
        None, "SMTP_HOST|TUNE_SMTP_HOST", "SMTP server for e-mail notifications."
    )
    smtp_port: int | None = _f(
        None, "SMTP_PORT|TUNE_SMTP_PORT", "Default 465 (ssl), 587 (starttls), 25.", ge=1
    )
    smtp_security: Literal["ssl", "starttls", "none"] = _f(
        "ssl", "SMTP_SECURITY", "ssl (implicit TLS), starttls, or none (local relays only)."
    )
    smtp_user: str | None = _f(None, "SMTP_USER|TUNE_SMTP_USER", "SMTP login (none when unset).")
    smtp_password: SecretStr | None = _f(
        None, "SMTP_PASSWORD|TUNE_SMTP_PASS", "SMTP password or app token."
    )
    mail_from: str | None = _f(
        None, "MAIL_FROM|TUNE_SMTP_FROM", "Sender address (default: SMTP_USER)."
    )
    mail_to: Annotated[list[str], NoDecode] = _f(
        [], "MAIL_TO|TUNE_SMTP_TO", "Recipients, comma-separated."
    )
    notify_timeout: float = _f(15.0, "NOTIFY_TIMEOUT", "Seconds one notification may take.", gt=0)

    @field_validator("questions", "mail_to", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        items = [value] if isinstance(value, str) else value
        if isinstance(items, list) and all(isinstance(i, str) for i in items):
            return [part.strip() for item in items for part in item.split(",") if part.strip()]
        return value

    @model_validator(mode="before")
    @classmethod
    def _predecessor(cls, data: Any) -> Any:
        """The predecessor tuner's variables that need a translation (README: "Coming from
        the predecessor toolkit"); ours, when set, win."""
        if isinstance(data, dict):
            return {**predecessor_values(os.environ, data), **data}
        return data

    @field_validator("storage", "max_hours", "acc_drop", "max_n", "port_wait", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def study_dir(self) -> Path:
        return self.out_dir / self.study

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{self.out_dir / 'optuna.db'}"

    def secrets(self) -> list[str]:
        """The secret values (for masking anything that might be shown)."""
        values = [getattr(self, name) for name in type(self).model_fields]
        return [v.get_secret_value() for v in values if isinstance(v, SecretStr)]

    def shown(self) -> dict[str, Any]:
        """Every field, secrets as "***" (or null when unset)."""
        shown = self.model_dump(mode="json")
        for name, value in shown.items():
            if isinstance(getattr(self, name), SecretStr):
                shown[name] = "***" if value else None
        return shown


def predecessor_values(env: Mapping[str, str], given: Mapping[str, Any]) -> dict[str, Any]:
    """Field values from the predecessor's TUNE_SMTP_SSL/NO_STARTTLS (else STARTTLS on port 587,
    variable or flag), heartbeat seconds and port-busy retries (a field given by its own
    variable or flag is left alone)."""
    env = {k.upper(): v for k, v in env.items() if v.strip()}
    mine = {k.upper() for k in given} | set(env)
    flag_port = next((v for k, v in given.items() if k.upper() == "SMTP_PORT"), None)
    port = flag_port or env.get("TUNE_SMTP_PORT", env.get("SMTP_PORT"))
    out: dict[str, Any] = {}
    if "SMTP_SECURITY" not in mine:
        if env.get("TUNE_SMTP_SSL", "0") not in ("0", "false"):
            out["SMTP_SECURITY"] = "ssl"
        elif env.get("TUNE_SMTP_NO_STARTTLS", "0") not in ("0", "false"):
            out["SMTP_SECURITY"] = "none"
        elif str(port) == "587":  # its default: STARTTLS
            out["SMTP_SECURITY"] = "starttls"
    seconds = env.get("TUNE_HEARTBEAT_INTERVAL_S") or env.get("HEARTBEAT_INTERVAL_S")
    if seconds and "TUNE_HEARTBEAT_MINUTES" not in mine:
        out["TUNE_HEARTBEAT_MINUTES"] = str(float(seconds) / 60)
    retries, wait = env.get("TUNE_PORT_BUSY_RETRIES"), env.get("TUNE_PORT_BUSY_WAIT_S")
    if (retries or wait) and "TUNE_PORT_WAIT" not in mine:
        out["TUNE_PORT_WAIT"] = str(float(retries or 3) * float(wait or 10))
    return out


def predecessor_warnings(env: Mapping[str, str]) -> list[str]:
    """One line per predecessor tuner variable with no equivalent here."""
    gone = {
        "HEARTBEAT_TRIALS": "heartbeats are timed (TUNE_HEARTBEAT_MINUTES)",
        "NOTIFY_TRIAL_DONE": "notes go out for new bests, failures, heartbeats and the end",
        "NOTIFY_TRIAL_DONE_EVERY": "notes go out for new bests, failures, heartbeats and the end",
        "TUNE_EMAIL_KINDS": "e-mail gets every kind of note the webhook gets",
    }
    lines = [f"{k}={env[k]} has no effect here: {why}" for k, why in gone.items() if env.get(k)]
    if env.get("TUNE_WEBHOOK_KIND", "feishu").lower() != "feishu":
        lines.append("TUNE_WEBHOOK_KIND: only Feishu/Lark webhooks are sent here")
    return lines


def variables(name: str) -> list[str]:
    """The variables field `name` reads; the first is the documented one."""
    alias = TuneConfig.model_fields[name].validation_alias
    assert isinstance(alias, AliasChoices)
    return [str(choice) for choice in alias.choices]


def env_names() -> set[str]:
    """Every variable the tuner reads: kept out of the trial servers' environment."""
    return {env for name in TuneConfig.model_fields for env in variables(name)}


def _is_secret(name: str) -> bool:
    return "SecretStr" in str(TuneConfig.model_fields[name].annotation)


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per non-secret field (`--eval-runs`, old spelling `--eval_runs`); unset flags
    are left out so the environment still applies. A switch alone means on (`--kill-port-owner`);
    list flags repeat (`--questions a.jsonl --questions b.jsonl`)."""
    for name, info in TuneConfig.model_fields.items():
        if _is_secret(name):
            continue
        flags = [f"--{name.replace('_', '-')}"] + ([f"--{name}"] if "_" in name else [])
        env = variables(name)[0]
        kind = str(info.annotation)
        extra: dict[str, Any] = {}
        if info.annotation is bool:
            extra = {"nargs": "?", "const": "1"}
        elif "list" in kind:
            extra = {"action": "append"}
        parser.add_argument(
            *flags,
            dest=name,
            default=argparse.SUPPRESS,
            metavar=str(env),
            help=f"{info.description} [{env}]",
            **extra,
        )


def load_config(args: argparse.Namespace | None = None) -> TuneConfig:
    """Environment plus flags; raise ValueError naming each bad variable or flag."""
    fields = TuneConfig.model_fields
    given = {k: v for k, v in vars(args or argparse.Namespace()).items() if k in fields}
    try:  # by variable name: what every pydantic 2 accepts for aliased fields
        return TuneConfig(**{variables(k)[0]: v for k, v in given.items()})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = str(err["loc"][0]) if err["loc"] else "?"
            name = next((f for f in fields if where == f or where in variables(f)), where)
            flag = f"--{name.replace('_', '-')}"
            env = variables(name)[0] if name in fields else where
            problems.append(f"{env} ({flag}): {err['msg']}")
        raise ValueError("invalid tuner settings: " + "; ".join(problems)) from None


if __name__ == "__main__":
    print(json.dumps(load_config().shown(), ensure_ascii=False, indent=2))
