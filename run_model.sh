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
  . .venv/bin/activate
fi
exec python serve.py "$@"
