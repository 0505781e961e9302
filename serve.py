"""Grader-facing server over vLLM (or the transformers fallback).

uvicorn serve:app --host 0.0.0.0 --port 8000      # settings from the environment
python serve.py --port 8000 --model-dir model/x   # or flags (see --help)
"""

from qaserve.launcher import configure_logging, serve_main
from qaserve.server import create_app
from qaserve.settings import get_settings

configure_logging(get_settings().log_level)
app = create_app()

if __name__ == "__main__":
    serve_main()
