#!/usr/bin/env bash
# Formatting, lint, types and import rules: what CI checks.   bash scripts/lint.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ruff format --check .
ruff check .
mypy qaserve serve.py
lint-imports --no-cache --no-logo  # the contracts in pyproject.toml
