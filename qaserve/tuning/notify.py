"""The tuner's notifications: a Feishu/Lark custom-bot webhook and e-mail (SMTP, SSL/STARTTLS).

    FEISHU_WEBHOOK=https://open.feishu.cn/open-apis/bot/v2/hook/... \
        python -m qaserve.tuning.notify "hello from the tuner"   # test every configured channel

Events: start, new best, failure streak, heartbeat, finish (and gave up). Secrets come from
the environment only (see `tune_secrets.sh.example`); a failed send is logged with every secret
masked and never stops the tuner. The webhook is posted with urllib, which logs no URLs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import smtplib
import socket
import ssl
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from qaserve.logs import configure_logging
from qaserve.tuning.config import TuneConfig

if TYPE_CHECKING:
    from qaserve.tuning.store import Summary

log = logging.getLogger(__name__)

TEXT_LIMIT = 4000  # characters per message: well inside Feishu's and mail servers' limits
TITLES = {
    "start": "started",
    "new_best": "new best",
    "failure_streak": "failing",
    "heartbeat": "progress",
    "finish": "finished",
    "gave_up": "gave up",
    "test": "test",
}


def mask(text: str, secrets: list[str]) -> str:
    """`text` with every secret value (and its URL-quoted form) replaced by ***."""
    from urllib.parse import quote

    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***").replace(quote(secret, safe=""), "***")
    return text


@dataclass
class Message:
    event: str
    study: str
    lines: list[str] = field(default_factory=list)

    @property
    def subject(self) -> str:
        return f"[qaserve tune] {self.study}: {TITLES.get(self.event, self.event)}"

    @property
    def text(self) -> str:
        text = "\n".join([self.subject, *self.lines])
        return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 1] + "…"


def describe_row(row: dict[str, Any]) -> str:
    """One trial in a line: figures, then what it changed."""
    label = f"trial {row['trial']}" + (" (reference)" if row.get("reference") else "")
    if row["state"] != "COMPLETE":
        error = (row.get("error") or "").splitlines()[0][:300] if row.get("error") else ""
        return f"{label}: FAILED ({row.get('kind')}) {error}; log {row.get('log')}"
    tokens = f", {row['tokens_per_s']:.1f} tok/s" if row.get("tokens_per_s") else ""
    changes = ", ".join(f"{k}={'(unset)' if v is None else v}" for k, v in row["env"].items())
    return (
        f"{label}: {row['chars_per_s']:.1f} chars/s{tokens}, accuracy {row['accuracy_grader']:.4f}"
        f" (cjk {row['accuracy_cjk']:.4f}){'' if row['feasible'] else ' BELOW ACC'}"
        + (f"; {changes}" if changes else "; current settings")
    )


def gain_line(improvement: dict[str, Any] | None) -> str:
    if not improvement:
        return "gain over the reference: not known yet"
    noisy = " (within the run-to-run spread: re-measure)" if improvement["within_spread"] else ""
    return (
        f"gain over the reference: {improvement['chars_per_s_pct']:+.1f}% chars/s, "
        f"accuracy {improvement['accuracy_grader_delta']:+.4f}{noisy}"
    )


def changes(env: dict[str, str | None]) -> str:
    """A trial's overrides in one line; none: the reference."""
    if not env:
        return "reference (current settings)"
    return " ".join(f"{k}={'(unset)' if v is None else v}" for k, v in env.items())


def eta(summary: Summary, target: int) -> float | None:
    """Seconds until `target` trials are done, at the mean pace of the trials run so far."""
    seconds = [r["seconds"] for r in summary.rows if r.get("seconds") and not r["duplicate_of"]]
    left = target - summary.counts["finished"]
    return round(sum(seconds) / len(seconds) * left) if seconds and left > 0 else None


def start_lines(summary: Summary, cfg: TuneConfig, n_params: int, n_questions: int) -> list[str]:
    return [
        f"host {socket.gethostname()}, sampler {cfg.sampler}, "
        f"{summary.counts['finished']}/{cfg.n_trials} trials done",
        f"accuracy limit {summary.acc_threshold:.4f}; {n_params} parameters; "
        f"{n_questions} questions x {cfg.eval_runs} runs per trial",
        f"outputs: {cfg.study_dir}",
    ]


def summary_lines(summary: Summary, target: int, best_path: Path) -> list[str]:
    counts = summary.counts
    lines = [
        f"{counts['finished']}/{target} trials: {counts['complete']} complete "
        f"({counts['feasible']} meet accuracy {summary.acc_threshold:.4f}), "
        f"{counts['failed']} failed, {counts['interrupted']} interrupted",
        "best: " + (describe_row(summary.best) if summary.best else "none yet"),
        gain_line(summary.improvement()),
        f"best_params: {best_path}",
    ]
    left = eta(summary, target)
    if left:
        lines.append(
            f"about {left / 3600:.1f} h left" if left > 5400 else f"about {left / 60:.0f} min left"
        )
    return lines


def progress_line(row: dict[str, Any], summary: Summary, target: int) -> str:
    """The console line printed after each trial."""
    head = f"[{time.strftime('%H:%M:%S')}] ({summary.counts['finished']}/{target})"
    best = summary.best
    tail = f"best: trial {best['trial']} {best['chars_per_s']:.1f} chars/s" if best else "no best"
    gain = summary.improvement()
    if gain:
        tail += f" ({gain['chars_per_s_pct']:+.1f}% vs reference)"
    took = f"{row['seconds']:.0f} s" if row.get("seconds") else "-"
    return f"{head} {describe_row(row)} [{took}] | {tail}"


class Channel(Protocol):
    name: str

    def send(self, message: Message) -> None: ...


@dataclass
class FeishuWebhook:
    """A Feishu (or Lark) custom bot: `{"msg_type": "text"}` JSON, signed when it has a secret."""

    url: str
    secret: str | None = None
    timeout_s: float = 15.0
    name: str = "feishu"

    def payload(self, message: Message, timestamp: int | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"msg_type": "text", "content": {"text": message.text}}
        if self.secret:
            stamp = int(time.time()) if timestamp is None else timestamp
            body["timestamp"] = str(stamp)
            body["sign"] = feishu_sign(stamp, self.secret)
        return body

    def send(self, message: Message) -> None:
        data = json.dumps(self.payload(message), ensure_ascii=False).encode()
        request = urllib.request.Request(
            self.url, data=data, headers={"Content-Type": "application/json; charset=utf-8"}
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            raw = response.read()
        try:
            reply = json.loads(raw or b"{}")
        except ValueError:
            reply = {}
        code = reply.get("code", reply.get("StatusCode", 0)) if isinstance(reply, dict) else 0
        if code not in (0, None):
            raise RuntimeError(f"webhook answered code {code}: {reply.get('msg')}")


def feishu_sign(timestamp: int, secret: str) -> str:
    """Feishu's signature: HMAC-SHA256 keyed by "timestamp\\nsecret" over nothing, base64."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, digestmod=hashlib.sha256).digest()).decode()


@dataclass
class SmtpMail:
    """Plain-text mail through SMTP: implicit TLS (`ssl`), `starttls`, or `none`."""

    host: str
    recipients: list[str]
    sender: str
    port: int | None = None
    security: str = "ssl"
    user: str | None = None
    password: str | None = None
    timeout_s: float = 15.0
    name: str = "email"

    def email(self, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["Subject"] = message.subject
        mail["From"] = self.sender
        mail["To"] = ", ".join(self.recipients)
        mail.set_content(message.text)
        return mail

    def send(self, message: Message) -> None:
        context = ssl.create_default_context()
        port = self.port or {"ssl": 465, "starttls": 587}.get(self.security, 25)
        smtp: smtplib.SMTP
        if self.security == "ssl":
            smtp = smtplib.SMTP_SSL(self.host, port, timeout=self.timeout_s, context=context)
        else:
            smtp = smtplib.SMTP(self.host, port, timeout=self.timeout_s)
        with smtp:
            if self.security == "starttls":
                smtp.starttls(context=context)
            if self.user:
                smtp.login(self.user, self.password or "")
            smtp.send_message(self.email(message))


class Notifier:
    """Sends each message through every configured channel; failures are logged, masked."""

    def __init__(self, channels: list[Channel], secrets: list[str] | None = None) -> None:
        self.channels = channels
        self.secrets = secrets or []

    @classmethod
    def from_config(cls, cfg: TuneConfig) -> Notifier:
        channels: list[Channel] = []
        if cfg.feishu_webhook is not None:
            secret = cfg.feishu_secret.get_secret_value() if cfg.feishu_secret else None
            url = cfg.feishu_webhook.get_secret_value()
            channels.append(FeishuWebhook(url, secret, cfg.notify_timeout))
        if cfg.smtp_host and cfg.mail_to:
            password = cfg.smtp_password.get_secret_value() if cfg.smtp_password else None
            sender = cfg.mail_from or cfg.smtp_user or f"qaserve-tune@{socket.gethostname()}"
            channels.append(
                SmtpMail(
                    cfg.smtp_host,
                    list(cfg.mail_to),
                    sender,
                    cfg.smtp_port,
                    cfg.smtp_security,
                    cfg.smtp_user,
                    password,
                    cfg.notify_timeout,
                )
            )
        elif cfg.smtp_host:
            log.warning("SMTP_HOST is set but MAIL_TO is empty: no e-mail notifications")
        return cls(channels, cfg.secrets())

    @property
    def names(self) -> list[str]:
        return [channel.name for channel in self.channels]

    def send(self, message: Message) -> dict[str, str | None]:
        """Try every channel; {channel: None when sent, else the (masked) error}."""
        outcome: dict[str, str | None] = {}
        for channel in self.channels:
            try:
                channel.send(message)
                outcome[channel.name] = None
            except (OSError, smtplib.SMTPException, RuntimeError, ValueError) as exc:
                error = mask(f"{type(exc).__name__}: {exc}", self.secrets)
                outcome[channel.name] = error
                log.warning("%s notification (%s) failed: %s", channel.name, message.event, error)
        if self.channels:
            log.info("notified %s: %s", message.event, {k: v or "ok" for k, v in outcome.items()})
        return outcome


def main(argv: list[str] | None = None) -> int:
    """Send one test message through every configured channel."""

    args = argv if argv is not None else sys.argv[1:]
    configure_logging("INFO")
    notifier = Notifier.from_config(TuneConfig())
    if not notifier.channels:
        print("no channel configured: set FEISHU_WEBHOOK and/or SMTP_HOST + MAIL_TO")
        return 2
    outcome = notifier.send(Message("test", "test", [" ".join(args) or "test message"]))
    print(json.dumps({k: v or "sent" for k, v in outcome.items()}, ensure_ascii=False))
    return 0 if all(v is None for v in outcome.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
