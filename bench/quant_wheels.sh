#!/usr/bin/env bash
# HERE (a machine with PyPI): the wheels bench/device_quant.sh installs on the H200 (Python 3.12,
# no network) into /tmp/quant-site, apart from vLLM's /tmp/site: llm-compressor pins
# compressed-tensors 0.19.0, vLLM 0.25 0.17.0. torch, transformers and numpy come from the
# H200's image (its accelerate is carried anyway: llm-compressor wants >= 1.15), pydantic and
# pydantic-settings from the staged vLLM bundle.
#   bash bench/quant_wheels.sh   # -> .bench/quant-wheels/ (24 MiB) and .bench/quant-pyarrow/ (53 MiB)
# One device call carries at most 64 MiB, so pyarrow (needed by `datasets`, which llm-compressor
# imports) travels in a call of its own; .bench/ is git-ignored (carry it explicitly).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.bench/quant-wheels
rm -rf "$dest" .bench/quant-pyarrow && mkdir -p "$dest" .bench/quant-pyarrow
# what the quantization step imports (measured in .venv-quant) and the H200 lacks
wheels=(llmcompressor==0.14.0.1 compressed-tensors==0.19.0 datasets==5.2.0 pyarrow==26.0.1
        pandas==3.1.1 python-dateutil==2.9.0.post0 six==1.17.0 multiprocess==0.70.19
        xxhash==4.1.0 dill==0.4.1 nvidia-ml-py==13.615.71 pillow==13.0.0 loguru==0.7.3
        # imported too, and perhaps missing there (harmless when present: these come first)
        requests==2.34.2 urllib3==2.8.0 idna==3.20 certifi==2026.10.19.post1
        charset-normalizer==3.5.3 rich==15.0.0 markdown-it-py==4.3.0 mdurl==0.1.2 pygments==2.21.0
        accelerate==1.15.0)
PIP_CONSTRAINT= python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d "$dest" "${wheels[@]}"
mv "$dest"/pyarrow-*.whl .bench/quant-pyarrow/
du -sh "$dest" .bench/quant-pyarrow
