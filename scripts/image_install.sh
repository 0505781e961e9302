#!/usr/bin/env bash
# Inside a vLLM image (Docker build): install our runtime requirements without touching the
# image's engine stack. torch, vLLM and transformers are pinned to what the image already has.
#   bash scripts/image_install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - > /tmp/image-keeps.txt <<'PY'
from importlib.metadata import PackageNotFoundError, version
for name in ("torch", "vllm", "transformers", "triton", "xformers", "flash-attn"):
    try:
        print(f"{name}=={version(name)}")
    except PackageNotFoundError:
        pass
PY
echo "keeping the image's: $(tr '\n' ' ' < /tmp/image-keeps.txt)"
python3 -m pip install --no-cache-dir -c /tmp/image-keeps.txt -r requirements.txt
python3 -c "import vllm, torch; print('image engine stack unchanged: vllm', vllm.__version__, 'torch', torch.__version__)"
