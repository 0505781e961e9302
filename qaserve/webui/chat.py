"""The web console's Chat tab: streamed multi-turn answers, stop, regenerate, sampling controls.

python webui.py --server-url http://127.0.0.1:8000      # then open the Chat tab

Answers stream from `POST /v1/chat/completions` (SSE). The server's current system prompt
applies (the System prompt tab changes it); the controls start at the server's settings.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from qaserve.sampling import TEMPERATURE_MAX
from qaserve.webui.api import (
    GENERATION_FIELDS,
    ConsoleError,
    StreamStats,
    chat_body,
    chat_messages,
    generation_defaults,
    stream_chat,
)

History = list[dict[str, Any]]
# name -> (label, minimum, maximum, step)
SLIDERS = {
    "max_new_tokens": ("max new tokens", 1, 4096, 1),
    "temperature": ("temperature (0 = greedy)", 0.0, TEMPERATURE_MAX, 0.05),
    "top_p": ("top-p", 0.01, 1.0, 0.01),
    "top_k": ("top-k (0 = off)", 0, 200, 1),
    "repetition_penalty": ("repetition penalty (1 = off)", 0.5, 2.0, 0.01),
    "frequency_penalty": ("frequency penalty (0 = off)", -2.0, 2.0, 0.05),
}
CONTROL_NAMES = list(GENERATION_FIELDS)
UPDATE_EVERY_S = 0.05  # at most 20 updates a second: a fast engine would flood the page


def add_question(text: str, history: History | None) -> tuple[str, History]:
    """The user's turn goes into the history at once; the answer streams in the next step."""
    history = list(history or [])
    if text.strip():
        history.append({"role": "user", "content": text})
    return "", history


def without_last_answer(history: History | None) -> History:
    """Regenerate: drop the trailing assistant turn(s), keep the question."""
    history = list(history or [])
    while history and history[-1].get("role") == "assistant":
        history.pop()
    return history


def answer(history: History | None, url: str, *controls: Any) -> Iterator[tuple[History, str]]:
    """Stream the answer to the last user turn into the history, with a stats line."""
    history = list(history or [])
    messages = chat_messages(history)
    if not messages or messages[-1]["role"] != "user":
        yield history, "nothing to answer: type a question"
        return
    body = chat_body(messages, dict(zip(CONTROL_NAMES, controls, strict=True)))
    stats = StreamStats()
    text = ""
    history.append({"role": "assistant", "content": ""})
    shown = 0.0
    try:
        for piece, finish in stream_chat(url, body):
            stats.add(piece)
            stats.finish = finish or stats.finish
            text += piece
            history[-1] = {"role": "assistant", "content": text}
            if time.perf_counter() - shown >= UPDATE_EVERY_S:  # the browser re-renders each one
                shown = time.perf_counter()
                yield history, stats.line()
    except ConsoleError as exc:
        if not text:  # no empty bubble; the stats line says what went wrong
            history.pop()
            yield history, f"error: {exc}"
        else:
            yield history, stats.line(f"error: {exc}")
        return
    yield history, stats.line()


def stopped(stats: str) -> str:
    """The stats line of a cancelled answer (its figures are those of the last update)."""
    return stats.replace("; streaming", "") + "; stopped by the user"


def control_values(info: dict[str, Any] | None) -> list[Any]:
    """The controls at the server's settings; the token slider ends at the server's context."""
    import gradio as gr

    defaults = generation_defaults(info or {})
    values: list[Any] = [defaults[name] for name in CONTROL_NAMES]
    limit = token_limit(info or {})
    index = CONTROL_NAMES.index("max_new_tokens")
    values[index] = gr.update(value=min(values[index], limit), maximum=limit)
    return values


def token_limit(info: dict[str, Any]) -> int:
    """The most tokens an answer can have on this server: its context (prompt room aside)."""
    context = info.get("max_model_len")
    return (
        context if isinstance(context, int) and context > 1 else int(SLIDERS["max_new_tokens"][2])
    )


def build_chat_tab(url: Any, info: Any) -> list[Any]:
    """The Chat tab's components (inside an open `gr.Tab`); returns its sampling sliders."""
    import gradio as gr

    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(label="Conversation", height=460, elem_id="chatbot")
            question = gr.Textbox(
                placeholder="Ask a question and press Enter (Shift+Enter: new line)",
                show_label=False,
                lines=1,
                max_lines=8,
                elem_id="chat-input",
            )
            with gr.Row():
                send = gr.Button("Send", variant="primary", elem_id="chat-send")
                stop = gr.Button("Stop", variant="stop", elem_id="chat-stop")
                regenerate = gr.Button("Regenerate", elem_id="chat-regenerate")
                clear = gr.Button("Clear", elem_id="chat-clear")
            stats = gr.Markdown("", elem_id="chat-stats")
        with gr.Column(scale=1, min_width=260):
            gr.Markdown(
                "**Generation** (starts at the server's settings; the server's system prompt "
                "applies)"
            )
            start = generation_defaults({})
            sliders = [
                gr.Slider(
                    low, high, value=start[name], step=step, label=label, elem_id=f"ctl-{name}"
                )
                for name, (label, low, high, step) in SLIDERS.items()
            ]
            defaults = gr.Button("Server defaults", size="sm", elem_id="chat-defaults")

    inputs = [chatbot, url, *sliders]
    outputs = [chatbot, stats]
    streams = []
    for trigger in (question.submit, send.click):
        event = trigger(add_question, [question, chatbot], [question, chatbot], queue=False)
        streams.append(event.then(answer, inputs, outputs, show_progress="hidden"))
    regen = regenerate.click(without_last_answer, chatbot, chatbot, queue=False)
    streams.append(regen.then(answer, inputs, outputs, show_progress="hidden"))
    stop.click(None, None, None, cancels=streams, queue=False).then(
        stopped, stats, stats, queue=False
    )
    clear.click(lambda: ([], ""), None, [chatbot, stats], cancels=streams, queue=False)
    defaults.click(control_values, info, sliders, queue=False)
    return sliders
