#!/usr/bin/env bash
# Docker build step: fetch MODEL_ID at REVISION into ./model with download_model.py. The
# ModelScope token comes from the build secret `modelscope_token`, if one was given, and lives
# only in this step's environment. MODELSCOPE_ENDPOINT (the build argument) points the SDK at
# another hub; empty, as the Dockerfiles default it, is the same as unset (the SDK's own hub).
#   bash scripts/image_download.sh MODEL_ID REVISION
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${MODELSCOPE_ENDPOINT:-}" ]; then
  unset MODELSCOPE_ENDPOINT
else
  echo "image_download: hub $MODELSCOPE_ENDPOINT"
fi
secret=/run/secrets/modelscope_token
if [ -s "$secret" ]; then
  MODELSCOPE_API_TOKEN="$(cat "$secret")"
  export MODELSCOPE_API_TOKEN
fi
python3 download_model.py --model_name "$1" --revision "$2" --cache_dir model
