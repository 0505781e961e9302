"""Entry-point helpers: logging setup and the `serve.py` command line.

    python serve.py --port 8000 --model-dir model/my-model --engine vllm

Every Settings field is also a flag (`--max-model-len`, old spelling `--max_model_len`);
flags beat environment variables, which beat defaults.
"""

from __future__ import annotations

import argparse
import logging

from qaserve.settings import Settings, load_settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
