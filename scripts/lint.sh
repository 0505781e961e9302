#!/usr/bin/env bash
# Formatting, lint and types: what CI checks.   bash scripts/lint.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ruff format --check .
ruff check .
mypy qaserve serve.py
