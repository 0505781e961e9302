"""Logging setup for entry points (the package itself only calls `logging.getLogger`).

python -c "from qaserve.logs import configure_logging; configure_logging('DEBUG')"
"""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """Root handler for the package's loggers (other libraries stay at WARNING)."""
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    logging.getLogger("qaserve").setLevel(level)
