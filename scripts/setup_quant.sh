#!/usr/bin/env bash
# Create .venv-quant for quantize_awq.py (idempotent; skips when up to date). llm-compressor has
# its own venv because it pins another compressed-tensors than vLLM does (requirements/quant.txt).
#   bash scripts/setup_quant.sh
# CPU machines get torch's CPU build, the version requirements/cpu.txt pins, from where setup.sh
# takes it (scripts/torch_cpu.sh: the configured pip sources, else TORCH_INDEX_URL), never PyPI's
# CUDA build; GPU machines reuse the system's CUDA torch (the venv sees the system
# site-packages), which llm-compressor accepts from 2.10 to 2.14.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if command -v nvidia-smi >/dev/null 2>&1 && timeout 30 nvidia-smi -L >/dev/null 2>&1; then
  mode=gpu venv_args=(--system-site-packages)
else
  mode=cpu venv_args=()
fi
torch=()
venv=.venv-quant needs="quantize_awq.py needs on a CPU machine (PyPI's torch is the CUDA build)"
# shellcheck source=scripts/torch_cpu.sh
source scripts/torch_cpu.sh
[ -x .venv-quant/bin/python ] || "$python" -m venv "${venv_args[@]}" .venv-quant
hash=$(sha1sum <requirements/quant.txt | cut -c1-12)
stamp=.venv-quant/.installed-$hash-$mode
if [ ! -f "$stamp" ]; then
  echo "installing requirements/quant.txt into .venv-quant ($mode; first time: about a minute, 1.5 GB)"
  .venv-quant/bin/python -m pip install -q -U pip
  if [ $mode = cpu ]; then
    resolve_torch .venv-quant/bin/python
    echo "torch $torch_cpu $torch_from"
    torch=("${torch_args[@]}" "torch==$torch_cpu")
  fi
  .venv-quant/bin/python -m pip install -q "${torch[@]}" -r requirements/quant.txt
  touch "$stamp"
fi
.venv-quant/bin/python -c "import llmcompressor, torch; print('environment ready: .venv-quant (llmcompressor', llmcompressor.__version__ + ', torch', torch.__version__ + ')')"
