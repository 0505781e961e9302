"""Notifications without an engine: message text, secret masking, the Feishu payload and
signature against a local webhook receiver, and mail through a local aiosmtpd server in plain
SMTP, STARTTLS (with login) and implicit TLS.

    pytest tests/tuning/test_notify.py -q
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import logging
import ssl
from typing import Any

import pytest

from qaserve.tuning.config import load_config
from qaserve.tuning.notify import (
    FeishuWebhook,
    Message,
    Notifier,
    SmtpMail,
    describe_row,
    feishu_sign,
    mask,
)
from tests.support.tuning import serve_smtp, serve_webhook

ROW = {
    "trial": 7,
    "state": "COMPLETE",
    "reference": False,
    "chars_per_s": 1234.56,
    "tokens_per_s": 300.0,
    "accuracy_grader": 0.41234,
    "accuracy_cjk": 0.55,
    "feasible": True,
    "env": {"MAX_NUM_SEQS": "256", "ASYNC_SCHEDULING": None},
}


def test_message_text() -> None:
    line = describe_row(ROW)
    assert line.startswith("trial 7: 1234.6 chars/s, 300.0 tok/s, accuracy 0.4123 (cjk 0.5500)")
    assert "MAX_NUM_SEQS=256" in line and "ASYNC_SCHEDULING=(unset)" in line
    failed = {
        "trial": 3,
        "state": "FAIL",
        "kind": "start_timeout",
        "error": "late\nmore",
        "log": "/l/3.log",
    }
    assert describe_row(failed) == "trial 3: FAILED (start_timeout) late; log /l/3.log"
    message = Message("new_best", "night1", [line, "x" * 5000])
    assert message.subject == "[qaserve tune] night1: new best"
    assert len(message.text) <= 4000 and message.text.endswith("…")


def test_mask_hides_plain_and_url_quoted_secrets() -> None:
    text = "POST https://h/hook/abc%2Fdef failed for abc/def and pw p@ss"
    assert (
        mask(text, ["abc/def", "p@ss", ""]) == "POST https://h/hook/*** failed for *** and pw ***"
    )


def test_feishu_signature_follows_the_documented_recipe() -> None:
    key = b"1700000000\nmysecret"  # "timestamp\nsecret" keys an HMAC-SHA256 of nothing
    want = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert feishu_sign(1700000000, "mysecret") == want
    body = FeishuWebhook("http://x", "mysecret").payload(Message("test", "s"), 1700000000)
    assert body["timestamp"] == "1700000000" and body["sign"] == want
    assert body["msg_type"] == "text" and body["content"]["text"].startswith("[qaserve tune] s")


def test_webhook_delivery_and_masked_failure(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with serve_webhook() as hook:
        notifier = Notifier([FeishuWebhook(hook.url, "SIGN-SECRET")], [hook.url, "SIGN-SECRET"])
        assert notifier.send(Message("start", "s", ["hello 你好"])) == {"feishu": None}
        assert hook.bodies[0]["content"]["text"] == "[qaserve tune] s: started\nhello 你好"
        assert "sign" in hook.bodies[0]
        hook.reply = {"code": 19021, "msg": "sign match fail or timestamp is not within one hour"}
        outcome = notifier.send(Message("finish", "s"))
        assert "19021" in (outcome["feishu"] or "")
        gone = FeishuWebhook(hook.url.replace("SECRET-HOOK-TOKEN", "x"), None, 5.0)
    closed = Notifier([gone, FeishuWebhook(hook.url, None, 2.0)], [hook.url, gone.url])
    outcome = closed.send(Message("heartbeat", "s"))  # server gone: errors, never exceptions
    assert all(outcome.values())
    assert "SECRET-HOOK-TOKEN" not in caplog.text and "SIGN-SECRET" not in caplog.text
    assert "SECRET-HOOK-TOKEN" not in str(outcome)


def test_mail_plain() -> None:
    with serve_smtp() as box:
        mail = SmtpMail("127.0.0.1", ["me@example.com"], "tuner@example.com", box.port, "none")
        assert Notifier([mail]).send(Message("finish", "s", ["done: 你好"])) == {"email": None}
    (got,) = box.messages
    assert got["Subject"] == "[qaserve tune] s: finished" and got["To"] == "me@example.com"
    assert "done: 你好" in got.get_payload(decode=True).decode()


def test_mail_starttls_with_login(server_tls: ssl.SSLContext, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    with serve_smtp(tls=server_tls, auth=True) as box:
        mail = SmtpMail(
            "127.0.0.1",
            ["a@x", "b@x"],
            "t@x",
            box.port,
            "starttls",
            "tuner",
            "SMTP-PASSWORD-SECRET",
        )
        assert Notifier([mail]).send(Message("new_best", "s")) == {"email": None}
        wrong = SmtpMail("127.0.0.1", ["a@x"], "t@x", box.port, "starttls", "tuner", "WRONG-PW")
        outcome = Notifier([wrong], ["WRONG-PW"]).send(Message("new_best", "s"))
    assert len(box.messages) == 1 and box.messages[0]["To"] == "a@x, b@x"
    assert box.logins[0] == ("tuner", "SMTP-PASSWORD-SECRET")
    assert "Authentication" in (outcome["email"] or "") or "535" in (outcome["email"] or "")
    assert "SMTP-PASSWORD-SECRET" not in caplog.text and "WRONG-PW" not in caplog.text


def test_mail_implicit_tls(server_tls: ssl.SSLContext) -> None:
    with serve_smtp(tls=server_tls, implicit_tls=True) as box:
        mail = SmtpMail("127.0.0.1", ["a@x"], "t@x", box.port, "ssl")
        assert Notifier([mail]).send(Message("heartbeat", "s")) == {"email": None}
    assert box.messages[0]["Subject"] == "[qaserve tune] s: progress"


def test_channels_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LARK_WEBHOOK", "https://open.larksuite.com/hook/X")
    monkeypatch.setenv("SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("MAIL_TO", "a@x, b@x")
    monkeypatch.setenv("SMTP_USER", "me@x")
    monkeypatch.setenv("SMTP_PASSWORD", "pw")
    notifier = Notifier.from_config(load_config(argparse.Namespace()))
    assert notifier.names == ["feishu", "email"]
    mail = notifier.channels[1]
    assert isinstance(mail, SmtpMail) and mail.recipients == ["a@x", "b@x"]
    assert mail.sender == "me@x" and mail.security == "ssl"
    assert set(notifier.secrets) == {"https://open.larksuite.com/hook/X", "pw"}
    monkeypatch.delenv("MAIL_TO")
    assert Notifier.from_config(load_config(argparse.Namespace())).names == ["feishu"]
