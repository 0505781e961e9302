#!/usr/bin/env bash
# Start the web console next to a running server; binds localhost unless told otherwise.
#   bash start_webui.sh                                   # console on http://127.0.0.1:7860
#   WEBUI_SERVER_URL=http://10.0.0.5:8000 WEBUI_PORT=7861 bash start_webui.sh
#   WEBUI_HOST=0.0.0.0 bash start_webui.sh --log-level DEBUG   # reachable from other machines
# WEBUI_SERVER_URL, WEBUI_HOST and WEBUI_PORT are read by webui.py itself (flags win).
set -euo pipefail
cd "$(dirname "$0")"
python=python3
[ -x .venv/bin/python ] && python=.venv/bin/python
exec "$python" webui.py "$@"
