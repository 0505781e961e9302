"""The web console's pure helpers, without a browser or an engine (seconds).

pytest tests/webui/test_helpers.py -q
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from qaserve.questions import QA
from qaserve.server.metrics import Metrics
from qaserve.webui import api
from qaserve.webui.app import read_options
from qaserve.webui.batch import run_batch, summary_markdown, table_rows
from qaserve.webui.chat import (
    CONTROL_NAMES,
    add_question,
    answer,
    control_values,
    without_last_answer,
)
from qaserve.webui.stats import figure_rows, parse_metrics, request_rows
from tests.support.fake_grader import serve_fake
from tests.support.harness import REPO

# --- metrics -------------------------------------------------------------------------------


def _scrape(metrics: Metrics) -> str:
    return metrics.render().decode()


def test_metrics_parsed_from_the_servers_own_registry() -> None:
    m = Metrics()
    m.items.inc(358)
    m.answer_chars.inc(12_000)
    m.batch_size.observe(358)
    m.batch_size.observe(2)
    m.requests.labels("/predict", "200").inc(2)
    m.requests.labels("/", "503").inc()
    m.latency.labels("/predict").observe(3.0)
    m.latency.labels("/predict").observe(1.0)
    snap = parse_metrics(_scrape(m))
    assert snap.totals["qa_items"] == 358 and snap.totals["qa_answer_chars"] == 12_000
    assert snap.batches == (2, 360)
    assert snap.requests == {("/predict", "200"): 2, ("/", "503"): 1}
    assert snap.latency["/predict"] == (2, 4.0)
    rows = {row[0]: row for row in figure_rows(snap)}
    assert rows["questions answered"][1] == "358"
    assert rows["mean questions per /predict"][1] == "180.0"
    assert request_rows(snap)[0] == ["/predict", "200", "2", "2.000"]


def test_figures_show_the_change_since_the_last_refresh() -> None:
    m = Metrics()
    m.answer_tokens.inc(100)
    before = parse_metrics(_scrape(m))
    m.answer_tokens.inc(50)
    after = parse_metrics(_scrape(m))
    after.taken = before.taken + 2.0
    row = next(r for r in figure_rows(after, before) if r[0] == "answer tokens")
    assert row == ["answer tokens", "150", "+50", "25.0"]


def test_other_families_are_ignored_and_new_qa_counters_shown() -> None:
    text = (
        "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 5.0\n"
        "# TYPE qa_new_things_total counter\nqa_new_things_total 3.0\n"
    )
    snap = parse_metrics(text)
    assert snap.totals == {"qa_new_things": 3.0}
    assert ["qa_new_things", "3", "", ""] in figure_rows(snap)


# --- server-sent events --------------------------------------------------------------------


def _event(content: str | None, finish: str | None = None) -> str:
    delta = {} if content is None else {"content": content}
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return "data: " + json.dumps({"choices": [choice]}, ensure_ascii=False)


def test_sse_pieces_finish_and_done() -> None:
    lines = [": keep-alive", _event(""), "", _event("CUDA "), _event("是"), _event(None, "stop")]
    lines += ["data: [DONE]", _event("after done")]
    assert list(api.parse_sse(lines)) == [
        ("", None),
        ("CUDA ", None),
        ("是", None),
        ("", "stop"),
    ]


def test_sse_error_event_raises() -> None:
    lines = [_event("part"), 'data: {"error": {"message": "generation failed: X"}}']
    stream = api.parse_sse(lines)
    assert next(stream) == ("part", None)
    with pytest.raises(api.StreamError, match="generation failed: X"):
        next(stream)


# --- banner and settings -------------------------------------------------------------------


def test_banner_texts() -> None:
    down = api.ServerStatus("http://h:1", "down", "ConnectError: refused")
    assert api.banner_text(down) == "Server down: cannot reach http://h:1 (ConnectError: refused)"
    loading = api.ServerStatus("http://h:1", "not ready", "GET / answered 503: loading")
    assert api.banner_text(loading).startswith("Server not ready at http://h:1: GET / answered 503")
    info = {"model_dir": "/m/Qwen2.5-0.5B/", "engine": {"name": "vllm", "version": "0.10.1"}}
    ready = api.ServerStatus("http://h:1", "ready", health={"status": "batch"}, info=info)
    assert api.banner_text(ready) == (
        "Server ready at http://h:1: model Qwen2.5-0.5B, engine vllm 0.10.1, batch mode"
    )
    html = api.banner_html(api.ServerStatus("http://<x>", "down", "<b>"))
    assert "<b>" not in html and 'data-state="down"' in html and "qa-down" in html


def test_probe_of_a_closed_port_is_down() -> None:
    from qaserve.server.process import free_port

    status = api.probe(f"http://127.0.0.1:{free_port()}")
    assert status.state == "down" and "ConnectError" in status.detail


def test_probe_of_a_loading_server_is_not_ready() -> None:
    with serve_fake() as fake:
        fake.not_ready = 5
        status = api.probe(fake.url)
    assert status.state == "not ready" and "503" in status.detail and status.info == {}


def test_generation_defaults_follow_the_servers_settings() -> None:
    info = {"settings": {"temperature": 0.7, "max_new_tokens": 256, "model_dir": "/m"}}
    assert api.generation_defaults(info) == {
        "max_new_tokens": 256,
        "temperature": 0.7,
        "top_p": 1.0,
        "top_k": 0,
        "repetition_penalty": 1.0,
        "frequency_penalty": 0.0,
    }
    rows = api.settings_rows(info)
    assert {r[0] for r in rows[:3]} == {"temperature", "max_new_tokens", "model_dir"}
    assert all(r[2] == "set" for r in rows[:3]) and all(r[2] == "" for r in rows[3:])


def test_the_token_slider_ends_at_the_servers_context() -> None:
    index = CONTROL_NAMES.index("max_new_tokens")
    small = control_values({"max_model_len": 2048, "settings": {"max_new_tokens": 4000}})[index]
    assert small["maximum"] == 2048 and small["value"] == 2048
    large = control_values({"max_model_len": 32768})[index]
    assert large["maximum"] == 32768 and large["value"] == 512
    unknown = control_values({})[index]  # no /info yet: the slider's own range
    assert unknown["maximum"] == 4096


# --- chat ----------------------------------------------------------------------------------


def test_chat_history_becomes_openai_messages() -> None:
    history = [
        {"role": "user", "content": "什么是CUDA？"},
        {"role": "assistant", "content": [{"type": "text", "text": "A platform."}]},
        {"role": "user", "content": "And a warp?"},
    ]
    body = api.chat_body(api.chat_messages(history), {"max_new_tokens": 64, "top_k": 5.0})
    assert body["messages"][1] == {"role": "assistant", "content": "A platform."}
    assert body["stream"] is True and body["max_tokens"] == 64 and body["top_k"] == 5
    assert "temperature" not in body


def test_history_steps() -> None:
    text, history = add_question("  ", [])
    assert (text, history) == ("", [])
    text, history = add_question("Q1", [])
    assert history == [{"role": "user", "content": "Q1"}]
    history.append({"role": "assistant", "content": "A1"})
    assert without_last_answer(history) == [{"role": "user", "content": "Q1"}]


def test_answer_to_an_unreachable_server_says_so() -> None:
    from qaserve.server.process import free_port

    url = f"http://127.0.0.1:{free_port()}"
    history = [{"role": "user", "content": "Q"}]
    steps = list(answer(history, url, 8, 0.0, 1.0, 0, 1.0, 0.0))
    final_history, stats = steps[-1]
    assert final_history == history  # no empty answer bubble left behind
    assert "error: cannot reach" in stats


# --- system prompt -------------------------------------------------------------------------


def test_403_asks_for_the_admin_token(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []

    def refuse(method: str, url: str, **kwargs: Any) -> httpx.Response:
        seen.append({"method": method, "url": url, **kwargs})
        body = {"error": {"message": "only local clients", "type": "forbidden", "code": 403}}
        return httpx.Response(403, json=body)

    monkeypatch.setattr(api.httpx, "request", refuse)
    with pytest.raises(api.ConsoleError) as caught:
        api.set_system_prompt("http://h:1", "new", token=" s3cret ")
    assert caught.value.status == 403 and "ADMIN_TOKEN" in str(caught.value)
    assert seen[0]["headers"] == {"Authorization": "Bearer s3cret"}
    assert seen[0]["json"] == {"system_prompt": "new"}

    from qaserve.webui.tabs import write_prompt

    # a token field never opened sends None
    _, status, accordion = write_prompt("http://h:1", "new", None, reset=True)
    assert "ADMIN_TOKEN" in status and accordion.get("open") is True
    assert seen[-1]["json"] == {"reset": True} and seen[-1]["headers"] == {}


# --- batch ---------------------------------------------------------------------------------


def _qas(n: int) -> list[QA]:
    return [
        QA(f"q{i} CUDA", f"answer:q{i} CUDA" if i % 2 else "other words", "s") for i in range(n)
    ]


def test_run_is_one_evaluate_call_with_progress() -> None:
    from qaserve.evaluation.run import evaluate

    qas = _qas(7)
    fractions: list[float | None] = []
    with serve_fake() as fake:
        records, summary = run_batch(
            qas, fake.url, mode="sequential", progress=lambda f, _d: fractions.append(f)
        )
        whole, whole_summary = evaluate(qas, endpoint=fake.url, mode="sequential")
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    strip = ("latency_s",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in records] == [
        {k: v for k, v in r.items() if k not in strip} for r in whole
    ]
    for key in ("n", "chars", "errors", "empty", "posts", "accuracy_grader", "accuracy_cjk"):
        assert getattr(summary, key) == pytest.approx(getattr(whole_summary, key)), key
    assert summary.chars_per_s == pytest.approx(summary.chars / summary.post_seconds)
    assert summary.sets == {"s": 7}


def test_batch_mode_is_one_post_with_progress() -> None:
    calls: list[tuple[float | None, str]] = []
    with serve_fake() as fake:
        records, summary = run_batch(_qas(3), fake.url, progress=lambda f, d: calls.append((f, d)))
        assert fake.posts == [["q0 CUDA", "q1 CUDA", "q2 CUDA"]]
    assert summary.mode == "batch" and summary.posts == 1
    assert calls and "one POST /predict with 3 questions" in calls[0][1]
    assert records[1]["rougeL_f1_raw"] == pytest.approx(1.0)
    assert len(table_rows(records)) == 3
    shown = summary_markdown(summary)
    assert "**accuracy (grader RougeL)**" in shown and shown.count("(95 % CI ") == 2


# --- entry points --------------------------------------------------------------------------


def test_flags_beat_environment_beats_defaults() -> None:
    from qaserve.webui.app import build_parser

    args = build_parser({}).parse_args([])
    assert (args.server_url, args.host, args.port) == ("http://127.0.0.1:8000", "127.0.0.1", 7860)
    env = {"WEBUI_SERVER_URL": "http://srv:8000", "WEBUI_PORT": "7999"}
    args = build_parser(env).parse_args([])
    assert (args.server_url, args.port) == ("http://srv:8000", 7999)
    args = build_parser(env).parse_args(["--server_url", "http://x:1", "--port", "1"])
    assert (args.server_url, args.port) == ("http://x:1", 1)


def test_login_only_from_the_environment() -> None:
    from qaserve.webui.app import launch_options, read_options

    assert read_options([], {}).auth is None
    args = read_options([], {"WEBUI_AUTH": "ta:pa:ss"})
    assert args.auth == ("ta", "pa:ss")
    assert launch_options("0.0.0.0", 1, args.auth)["auth"] == ("ta", "pa:ss")
    with pytest.raises(SystemExit, match="user:password"):
        read_options([], {"WEBUI_AUTH": "nobody"})


def test_theme_uses_system_fonts_only() -> None:
    import gradio as gr

    from qaserve.webui.app import launch_options

    theme = launch_options("127.0.0.1", 7860)["theme"]
    fonts = [*theme._font, *theme._font_mono]
    assert not [f for f in fonts if isinstance(f, (gr.themes.GoogleFont, gr.themes.LocalFont))]
    assert theme._stylesheets == [] and theme._font_css == []  # nothing to fetch, no @font-face


def test_start_script_help() -> None:
    out = subprocess.run(
        ["bash", str(REPO / "start_webui.sh"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "WEBUI_SERVER_URL" in out and "--host" in out


def test_app_builds_without_a_server(tmp_path: Path) -> None:
    from qaserve.webui.app import build_app

    app = build_app("http://127.0.0.1:9")
    labels = {getattr(block, "label", None) for block in app.blocks.values()}
    assert {"System prompt", "Question set", "Conversation"} <= labels


def test_console_takes_gradios_own_variables_as_fallbacks() -> None:
    gradio = {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7870"}
    args = read_options([], gradio)
    assert (args.host, args.port) == ("0.0.0.0", 7870)
    ours = read_options([], {**gradio, "WEBUI_HOST": "127.0.0.1", "WEBUI_PORT": "7861"})
    assert (ours.host, ours.port) == ("127.0.0.1", 7861)  # our names win
    assert read_options(["--port", "7999"], gradio).port == 7999  # flags win
