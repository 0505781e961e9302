"""Entry-point helpers: logging setup and the `serve.py` command line.

    python serve.py --port 8000 --model-dir model/my-model --engine vllm

Every Settings field is also a flag (`--max-model-len`, old spelling `--max_model_len`);
flags beat environment variables, which beat defaults.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Any

from qaserve.settings import Settings, load_settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
EXIT_ENGINE_DIED = 70  # the engine died: a supervisor should restart the server


def configure_logging(level: str = "INFO") -> None:
    """Root handler for the package's loggers; called by entry points only."""
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    logging.getLogger("qaserve").setLevel(level)


def settings_parser(description: str) -> argparse.ArgumentParser:
    """A parser with one optional flag per Settings field (unset flags are left out); secrets
    have no flag: a command line is visible to every user of the machine."""
    parser = argparse.ArgumentParser(description=description)
    for name, info in Settings.model_fields.items():
        if "SecretStr" in str(info.annotation):
            continue
        flags = [f"--{name.replace('_', '-')}"]
        if "_" in name:
            flags.append(f"--{name}")
        parser.add_argument(
            *flags,
            dest=name,
            default=argparse.SUPPRESS,
            metavar=name.upper(),
            help=info.description,
        )
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k, v in vars(args).items() if k in Settings.model_fields}
    return load_settings(**overrides)  # strings: Settings parses them as it parses env values


def serve_main(argv: list[str] | None = None) -> None:
    """Parse flags, then run uvicorn on the app built from the resulting settings."""
    import uvicorn

    from qaserve.server import create_app

    args = settings_parser("Serve the Q&A model for the grader.").parse_args(argv)
    settings = settings_from_args(args)
    configure_logging(settings.log_level)
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
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    stopped()
