"""Grader-facing server over vLLM (or the transformers fallback).

python serve.py --port 8000 --model-dir model/x   # flags or environment (see --help)
uvicorn serve:app --host 0.0.0.0 --port 8000      # settings from the environment
"""

from typing import Any

from qaserve.server.cli import app_from_environment, serve_main


def __getattr__(name: str) -> Any:
    # `uvicorn serve:app`: the app is built when uvicorn asks for it, never at import
    if name == "app":
        return app_from_environment()
    raise AttributeError(name)


if __name__ == "__main__":
    serve_main()
