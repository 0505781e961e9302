"""The `serve.py` command line: settings from flags, the port bound before loading, uvicorn.

    python serve.py --port 8000 --model-dir model/my-model --engine vllm

Every Settings field is also a flag (`--max-model-len`, old spelling `--max_model_len`);
flags beat environment variables, which beat defaults.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from qaserve.logs import configure_logging
from qaserve.server.app import create_app
from qaserve.settings import Settings, SettingsError, get_settings, load_settings

EXIT_ENGINE_DIED = 70  # the engine died: a supervisor should restart the server
EXIT_STARTUP_FAILED = 3  # uvicorn's own status when the app does not start


# vLLM's own spellings of the options it shares with us (`vllm serve --quantization awq`)
VLLM_FLAGS = {"vllm_quantization": ["--quantization"], "vllm_kv_cache_dtype": ["--kv-cache-dtype"]}


class Switch(argparse.Action):
    """A boolean flag as vLLM's are: `--enforce-eager` turns it on, `--no-enforce-eager` off;
    an explicit value (`--enforce-eager 0`, the old habit) is still taken."""

    def __call__(self, parser: Any, namespace: Any, value: Any, option: str | None = None) -> None:
        if option is not None and option.startswith("--no-"):
            value = "false"
        setattr(namespace, self.dest, "true" if value is None else value)


def settings_parser(description: str) -> argparse.ArgumentParser:
    """A parser with one optional flag per Settings field (unset flags are left out); secrets
    have no flag: a command line is visible to every user of the machine."""
    parser = argparse.ArgumentParser(description=description)
    for name, info in Settings.model_fields.items():
        if "SecretStr" in str(info.annotation):
            continue
        flags = [f"--{name.replace('_', '-')}", *VLLM_FLAGS.get(name, [])]
        if "_" in name:
            flags.append(f"--{name}")
        options: dict[str, Any] = {"metavar": name.upper()}
        if info.annotation in (bool, bool | None):
            flags.append(f"--no-{name.replace('_', '-')}")
            options = {"action": Switch, "nargs": "?", "metavar": "BOOL"}
        parser.add_argument(
            *flags, dest=name, default=argparse.SUPPRESS, help=info.description, **options
        )
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k, v in vars(args).items() if k in Settings.model_fields}
    return load_settings(**overrides)  # strings: Settings parses them as it parses env values


def listening_socket(host: str, port: int) -> socket.socket:
    """HOST:PORT bound before anything loads, so a busy port ends the start in seconds, not after
    a minute of loading; it listens (and the grader connects) only once the app is ready."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        owner = port_owner(port)
        raise SystemExit(
            f"cannot listen on {host}:{port}: {exc.strerror}"
            + (f"; it is held by {owner}" if owner else "")
            + ". Stop that process or choose another PORT."
        ) from None
    return sock


def port_owner(port: int) -> str | None:
    """'pid N (command)' of the process listening on `port`, where /proc lets us see it."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) in inodes for fd in fd_dir.iterdir()):
                cmd = b" ".join((fd_dir.parent / "cmdline").read_bytes().split())
                return f"pid {fd_dir.parent.name} ({cmd.decode(errors='replace')[:120]})"
        except OSError:
            continue
    return None


@lru_cache(maxsize=1)
def app_from_environment() -> FastAPI:
    """The app `uvicorn serve:app` runs: settings from the environment only."""
    configure_logging(get_settings().log_level)
    return create_app()


def serve_main(argv: list[str] | None = None) -> None:
    """Parse flags, bind the port, then run uvicorn on the app built from the settings."""
    import uvicorn

    args = settings_parser("Serve the Q&A model for the grader.").parse_args(argv)
    try:
        settings = settings_from_args(args)
    except SettingsError as exc:
        raise SystemExit(str(exc)) from None  # one line naming the variable, no traceback
    configure_logging(settings.log_level)
    sock = listening_socket(settings.host, settings.port)
    app = create_app(settings)

    def stopped(*_: Any) -> None:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        # no interpreter teardown, as when uvicorn's SIGTERM killed us: the engine is already
        # closed, and vLLM's finalizers would fail or wait on dead engine processes there
        os._exit(EXIT_ENGINE_DIED if app.state.qa.dead else 0)

    # uvicorn drains requests on SIGTERM, then raises it again to die by it (status -15);
    # this handler makes that a clean exit: 0 after a stop, EXIT_ENGINE_DIED after a death.
    signal.signal(signal.SIGTERM, stopped)
    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info")
    )
    server.run(sockets=[sock])
    if not server.started:  # the app did not start (the log says why)
        sys.exit(EXIT_STARTUP_FAILED)
    stopped()
