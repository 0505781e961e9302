"""The web console (Gradio): chat, system prompt, server figures and batch tests over HTTP.

python webui.py --server-url http://127.0.0.1:8000 --host 127.0.0.1 --port 7860

Its own options are flags with environment fallbacks, read here and nowhere else (they are the
console's, not the server's, so they are not in `qaserve.settings`): `WEBUI_SERVER_URL`,
`WEBUI_HOST` (default 127.0.0.1: localhost only), `WEBUI_PORT` (7860) and `WEBUI_AUTH`
(`user:password` for a login page; environment only). It works with no network: analytics
off, system fonts only, every asset served by the console itself.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from qaserve.logs import configure_logging
from qaserve.webui import api
from qaserve.webui.chat import CONTROL_NAMES, build_chat_tab, control_values
from qaserve.webui.tabs import build_batch_tab, build_prompt_tab, build_server_tab, read_prompt

if TYPE_CHECKING:
    import gradio as gr

log = logging.getLogger(__name__)
DEFAULT_SERVER_URL = "http://127.0.0.1:8000"
STATUS_EVERY_S = 5.0
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# no telemetry, no version check, no hub calls: the console must run with no network
OFFLINE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
}
SYSTEM_FONTS = ("system-ui", "Noto Sans CJK SC", "Noto Sans", "DejaVu Sans", "sans-serif")
MONO_FONTS = ("ui-monospace", "DejaVu Sans Mono", "monospace")
CSS = """
.qa-banner {padding: 8px 14px; border-radius: 6px; font-weight: 600; margin-bottom: 4px}
.qa-ready {background: #e7f6ec; color: #14532d; border: 1px solid #86c99b}
.qa-loading {background: #fff6db; color: #713f12; border: 1px solid #e3c66b}
.qa-down {background: #fde8e8; color: #7f1d1d; border: 1px solid #e59a9a}
"""


def status_update(url: str, last_state: str | None) -> tuple[Any, ...]:
    """(banner, /info, state, *chat controls): controls reset when the server becomes ready."""
    import gradio as gr

    status = api.probe(url)
    if status.state == "ready" and last_state != "ready" and status.info:
        controls = control_values(status.info)
    else:
        controls = [gr.update() for _ in CONTROL_NAMES]
    return (api.banner_html(status), status.info, status.state, *controls)


def build_app(server_url: str = DEFAULT_SERVER_URL) -> gr.Blocks:
    """The console's Blocks; `launch` it with `launch_options()`."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    import gradio as gr

    with gr.Blocks(title="qaserve console", analytics_enabled=False) as app:
        url = gr.State(server_url.rstrip("/"))
        info = gr.State({})
        state = gr.State(None)
        banner = gr.HTML(
            api.banner_html(api.ServerStatus(server_url, "checking")), elem_id="banner"
        )
        with gr.Accordion("Connection", open=False, elem_id="connection"), gr.Row():
            url_box = gr.Textbox(server_url, label="server URL", elem_id="server-url", scale=4)
            connect = gr.Button("Connect", elem_id="server-connect", scale=1)
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                sliders = build_chat_tab(url, info)
            with gr.Tab("System prompt", id="prompt"):
                prompt, prompt_status = build_prompt_tab(url)
            with gr.Tab("Server", id="server") as server_tab:
                build_server_tab(url, [app.load, server_tab.select])
            with gr.Tab("Batch test", id="batch"):
                build_batch_tab(url)
        # polling starts once the first check is in: a tick racing it would see no state yet
        # and reset the chat controls a second time, over what the user set meanwhile
        timer = gr.Timer(STATUS_EVERY_S, active=False)
        status_out = [banner, info, state, *sliders]
        first = app.load(status_update, [url, state], status_out, show_progress="hidden")
        first.then(lambda: gr.Timer(active=True), None, timer).then(
            read_prompt, url, [prompt, prompt_status], show_progress="hidden"
        )
        timer.tick(status_update, [url, state], status_out, show_progress="hidden")
        connect.click(lambda u: (u.strip().rstrip("/"), None), url_box, [url, state]).then(
            status_update, [url, state], status_out
        ).then(read_prompt, url, [prompt, prompt_status])
    return app


def launch_options(
    host: str, port: int, auth: tuple[str, str] | None = None, share: bool = False
) -> dict[str, Any]:
    """`launch()` keywords: local theme fonts and CSS, no Gradio link, a public share link
    only when asked (`--share`, the predecessor's WEBUI_SHARE=1)."""
    import gradio as gr

    theme = gr.themes.Default(font=list(SYSTEM_FONTS), font_mono=list(MONO_FONTS))
    return {
        "server_name": host,
        "server_port": port,
        "share": share,
        "auth": auth,
        "theme": theme,
        "css": CSS,
        "show_error": True,
        "footer_links": ["api", "settings"],
    }


def read_options(
    argv: list[str] | None = None, environ: Mapping[str, str] | None = None
) -> argparse.Namespace:
    """Flags > WEBUI_* environment > defaults; `auth` comes from WEBUI_AUTH only (a password
    on the command line is visible to every user of the machine)."""
    env = os.environ if environ is None else environ
    args = build_parser(env).parse_args(argv)
    given = env.get("WEBUI_AUTH", "")
    user, _, password = given.partition(":")
    if given and not (user and password):
        raise SystemExit("WEBUI_AUTH must be user:password")
    args.auth = (user, password) if given else None
    return args


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """Flags > WEBUI_* environment > defaults; snake_case spellings kept as aliases."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog="webui.py", description="qaserve's web console.")
    parser.add_argument(
        "--server-url",
        "--server_url",
        default=env.get("WEBUI_SERVER_URL") or env.get("API_BASE_URL") or DEFAULT_SERVER_URL,
        help="the qaserve server (env WEBUI_SERVER_URL, or the predecessor's API_BASE_URL; "
        "default: %(default)s)",
    )
    parser.add_argument(
        "--share",
        action="store_true",
        default=env.get("WEBUI_SHARE", "0").strip().lower() in ("1", "true", "yes", "on"),
        help="a public Gradio share link (env WEBUI_SHARE; needs the network; off)",
    )
    parser.add_argument(
        "--host",
        default=env.get("WEBUI_HOST") or env.get("GRADIO_SERVER_NAME") or "127.0.0.1",
        help="interface to bind (env WEBUI_HOST, or Gradio's GRADIO_SERVER_NAME; default "
        "%(default)s: this machine only)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=env.get("WEBUI_PORT") or env.get("GRADIO_SERVER_PORT") or "7860",
        help="port (env WEBUI_PORT, or Gradio's GRADIO_SERVER_PORT; default %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        "--log_level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="qaserve log level (INFO)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:

    args = read_options(argv)
    configure_logging(args.log_level)
    if args.host not in LOOPBACK and args.auth is None:
        log.warning(
            "binding %s without WEBUI_AUTH: whoever reaches this port can chat and, since the "
            "console is a local client of the server, change its system prompt",
            args.host,
        )
    app = build_app(args.server_url)
    log.info("web console for %s on http://%s:%d", args.server_url, args.host, args.port)
    if args.share:
        log.warning(
            "WEBUI_SHARE/--share: a public link reaches this console through Gradio's servers"
        )
    options = launch_options(args.host, args.port, args.auth, args.share)
    app.queue(default_concurrency_limit=16).launch(**options)
    return 0
