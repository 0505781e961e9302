"""The web console's System prompt, Server and Batch test tabs (Gradio components + handlers).

python webui.py --server-url http://127.0.0.1:8000      # the tabs are built by qaserve.webui.app

Handlers take the server URL as their first input and talk HTTP only (qaserve.webui.api);
the batch tab runs the evaluator's library (qaserve.webui.batch).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

from qaserve.client import ClientError
from qaserve.evaluation.run import MODES
from qaserve.webui import api
from qaserve.webui.batch import (
    TABLE_HEADERS,
    describe_set,
    load_set,
    run_batch,
    summary_markdown,
    table_rows,
    write_outputs,
)
from qaserve.webui.stats import (
    FIGURE_HEADERS,
    REQUEST_HEADERS,
    MetricsSnapshot,
    figure_rows,
    parse_metrics,
    request_rows,
)

log = logging.getLogger(__name__)
METRICS_EVERY_S = 5.0
UPLOAD_TYPES = [".docx", ".jsonl", ".json", ".txt", ".csv"]


# --- system prompt -------------------------------------------------------------------------


def _prompt_state(body: dict[str, Any], done: str = "") -> str:
    kind = "the server's default" if body.get("is_default") else "changed from the default"
    chars = len(body.get("system_prompt") or "")
    return f"{done}The server's system prompt ({chars} characters) is {kind}."


def read_prompt(url: str) -> tuple[Any, str]:
    import gradio as gr

    try:
        body = api.get_system_prompt(url)
    except api.ConsoleError as exc:
        return gr.update(), f"Could not read the system prompt: {exc}"
    return body.get("system_prompt", ""), _prompt_state(body)


def write_prompt(
    url: str, text: str | None, token: str | None, reset: bool = False
) -> tuple[Any, str, Any]:
    """Save (or reset); a 403 opens the admin-token field and says why."""
    import gradio as gr

    try:
        body = api.set_system_prompt(url, text, reset=reset, token=token)
    except api.ConsoleError as exc:
        needs_token = exc.status in (401, 403)
        return (
            gr.update(),
            f"Not changed. {exc}",
            gr.update(open=True) if needs_token else gr.update(),
        )
    done = "Reset to the default. " if reset else "Saved. "
    return body.get("system_prompt", ""), _prompt_state(body, done), gr.update()


def build_prompt_tab(url: Any) -> tuple[Any, Any]:
    """Components of the System prompt tab; returns (textbox, status) for the app's load."""
    import gradio as gr

    prompt = gr.Textbox(label="System prompt", lines=8, max_lines=30, elem_id="system-prompt")
    status = gr.Markdown("", elem_id="system-prompt-status")
    with gr.Row():
        reload = gr.Button("Reload from server", elem_id="prompt-reload")
        save = gr.Button("Save to server", variant="primary", elem_id="prompt-save")
        reset = gr.Button("Reset to default", elem_id="prompt-reset")
    with gr.Accordion("Admin token", open=False, elem_id="admin-token-box") as box:
        gr.Markdown(
            "Clients on the server's own machine may change the prompt freely; others need the "
            "server's `ADMIN_TOKEN`. The token is only sent with the change, never stored."
        )
        token = gr.Textbox(label="ADMIN_TOKEN", type="password", elem_id="admin-token")
    reload.click(read_prompt, url, [prompt, status])
    save.click(write_prompt, [url, prompt, token], [prompt, status, box])
    reset.click(
        lambda u, t: write_prompt(u, "", t, reset=True), [url, token], [prompt, status, box]
    )
    return prompt, status


# --- server --------------------------------------------------------------------------------


def info_markdown(info: dict[str, Any]) -> str:
    engine = info.get("engine") or {}
    prompt = info.get("system_prompt")
    lines = [
        f"- **ready**: {info.get('ready')}",
        f"- **engine**: {engine.get('name', '?')} {engine.get('version', '')}",
        f"- **model**: `{info.get('model_dir')}`"
        + (" (smoke model)" if info.get("smoke_model") else ""),
        f"- **python**: {info.get('python', '?')}, **uptime**: {info.get('uptime_s', '?')} s",
        f"- **system prompt**: {len(prompt or '')} characters",
    ]
    return "\n".join(lines)


def _info_outputs(url: str) -> tuple[tuple[Any, ...], str]:
    import gradio as gr

    try:
        info = api.get_info(url)
    except api.ConsoleError as exc:
        return (gr.update(), gr.update(), gr.update()), f"/info: {exc}"
    return (info_markdown(info), api.settings_rows(info), info), ""


def _metrics_outputs(url: str, previous: MetricsSnapshot | None) -> tuple[tuple[Any, ...], str]:
    import gradio as gr

    try:
        snap = parse_metrics(api.get_metrics_text(url))
    except (api.ConsoleError, ValueError) as exc:
        return (gr.update(), gr.update(), previous), f"/metrics: {exc}"
    return (figure_rows(snap, previous), request_rows(snap), snap), ""


def refresh_server(url: str, previous: MetricsSnapshot | None) -> tuple[Any, ...]:
    """(info summary, settings rows, raw info, figure rows, request rows, snapshot, note)."""
    info, info_note = _info_outputs(url)
    metrics, metrics_note = _metrics_outputs(url, previous)
    note = "; ".join(n for n in (info_note, metrics_note) if n)
    return (*info, *metrics, note)


def build_server_tab(url: Any, triggers: list[Any]) -> None:
    """The Server tab; `triggers` (e.g. the app's load, the tab's select) refresh it too."""
    import gradio as gr

    with gr.Row():
        refresh = gr.Button("Refresh", elem_id="server-refresh", scale=0)
        live = gr.Checkbox(
            True, label=f"refresh every {METRICS_EVERY_S:g} s", elem_id="server-live"
        )
    note = gr.Markdown("", elem_id="server-note")
    with gr.Row(equal_height=False):
        with gr.Column():
            summary = gr.Markdown("", elem_id="server-info")
            figures = gr.Dataframe(
                headers=FIGURE_HEADERS,
                column_widths=["46%", "20%", "17%", "17%"],
                label="/metrics: qa_* figures (change, per s: since the last refresh)",
                elem_id="metrics-figures",
            )
            requests = gr.Dataframe(
                headers=REQUEST_HEADERS,
                column_widths=["46%", "16%", "20%", "18%"],
                label="/metrics: requests (mean s: all statuses of the endpoint)",
            )
        with gr.Column():
            settings = gr.Dataframe(
                headers=["setting", "value", "set"],
                column_widths=["42%", "44%", "14%"],
                wrap=True,
                label="effective settings (set = not the default)",
                max_height=520,
                elem_id="server-settings",
            )
    with gr.Accordion("/info as JSON", open=False):
        raw = gr.JSON()
    snap = gr.State(None)
    timer = gr.Timer(METRICS_EVERY_S)
    outputs = [summary, settings, raw, figures, requests, snap, note]
    for trigger in [refresh.click, *triggers]:
        trigger(refresh_server, [url, snap], outputs)
    timer.tick(refresh_server, [url, snap], outputs, show_progress="hidden")
    live.change(lambda on: gr.Timer(active=on), live, timer)


# --- batch test ----------------------------------------------------------------------------


def describe_upload(path: str | None) -> str:
    if not path:
        return "Upload a question set: docx (`问题：`/`答案：`), JSONL, JSON, TXT or CSV."
    try:
        return f"`{Path(path).name}`: " + describe_set(load_set(Path(path)))
    except (OSError, ValueError) as exc:
        return f"Cannot read `{Path(path).name}`: {exc}"


def run_batch_tab(
    path: str | None,
    url: str,
    mode: str,
    concurrency: float,
    timeout_s: float,
    max_n: float,
    dedupe: bool,
    strip_suffix: bool,
    progress: Any = None,
) -> tuple[Any, ...]:
    """Load, ask, score, write: (summary, plots, table, JSONL button, files)."""
    import gradio as gr

    if not path:
        raise gr.Error("Upload a question set first.")
    try:
        qas = load_set(Path(path), max_n=int(max_n) if max_n else None, dedupe=dedupe)
    except (OSError, ValueError) as exc:
        raise gr.Error(f"Cannot read the question set: {exc}") from exc
    if not qas:
        raise gr.Error("The file holds no questions.")
    report = (lambda f, d: progress(f, desc=d)) if progress is not None else None
    try:
        records, summary = run_batch(
            qas, url, mode=mode, concurrency=int(concurrency), timeout_s=float(timeout_s),
            strip_q_suffix=strip_suffix, progress=report,
        )  # fmt: skip
    except ClientError as exc:
        raise gr.Error(f"The run failed: {exc}") from exc
    if progress is not None:
        progress(1.0, desc="writing the report")
    out = write_outputs(records, summary, Path(tempfile.mkdtemp(prefix="qaserve-webui-")))
    log.info("batch test of %d questions: %s", len(qas), json.dumps(summary.as_dict()))
    plots = [str(path) for name, path in out.items() if name.endswith(".png")]  # those drawn
    files = [str(out[k]) for k in ("jsonl", "summary", "report.html", "report.md")]
    button = gr.DownloadButton(value=str(out["jsonl"]), visible=True)
    return (
        summary_markdown(summary),
        gr.update(value=plots, visible=True),
        gr.update(value=table_rows(records), visible=True),
        button,
        gr.update(value=files, visible=True),
    )


def build_batch_tab(url: Any) -> None:
    import gradio as gr

    with gr.Row(equal_height=False):
        with gr.Column(scale=2):
            upload = gr.File(label="Question set", file_types=UPLOAD_TYPES, elem_id="batch-file")
            described = gr.Markdown(describe_upload(None), elem_id="batch-set")
        with gr.Column(scale=3):
            with gr.Row():
                mode = gr.Dropdown(list(MODES), value="auto", label="mode (auto: as the grader)")
                concurrency = gr.Slider(1, 64, value=8, step=1, label="clients (concurrent)")
            with gr.Row():
                timeout = gr.Number(360, label="timeout per POST (s)", minimum=1)
                max_n = gr.Number(0, label="at most N questions (0 = all)", minimum=0, precision=0)
            with gr.Row():
                dedupe = gr.Checkbox(False, label="drop repeated questions")
                strip = gr.Checkbox(False, label="strip a trailing 请简要回答-like suffix")
            run = gr.Button("Run batch test", variant="primary", elem_id="batch-run")
    summary = gr.Markdown("", elem_id="batch-summary")
    with gr.Row():
        jsonl = gr.DownloadButton(
            "Download per-question JSONL", visible=False, elem_id="batch-jsonl"
        )
    plots = gr.Gallery(
        label="report plots",
        columns=3,
        height=300,
        object_fit="contain",
        visible=False,
        elem_id="batch-plots",
    )
    table = gr.Dataframe(
        headers=TABLE_HEADERS,
        column_widths=["4%", "18%", "20%", "30%", "6%", "6%", "5%", "5%", "6%"],
        wrap=True,
        max_height=520,
        label="per question",
        elem_id="batch-table",
    )
    files = gr.File(label="run files (JSONL, summary, report)", file_count="multiple")
    upload.change(describe_upload, upload, described)

    def handler(
        path: str | None,
        url: str,
        mode: str,
        concurrency: float,
        timeout_s: float,
        max_n: float,
        dedupe: bool,
        strip_suffix: bool,
        progress: Any = gr.Progress(),  # noqa: B008 (Gradio finds the tracker by this default)
    ) -> tuple[Any, ...]:
        args = (path, url, mode, concurrency, timeout_s, max_n, dedupe, strip_suffix)
        return run_batch_tab(*args, progress=progress)

    inputs = [upload, url, mode, concurrency, timeout, max_n, dedupe, strip]
    outputs = [summary, plots, table, jsonl, files]
    run.click(handler, inputs, outputs, concurrency_limit=1, show_progress_on=summary)
