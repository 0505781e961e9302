#!/usr/bin/env bash
# Runs ON the H200 (vLLM staged in /tmp/site, bench/q05 in the tree): our server over HTTP with
# dummy weights (every answer runs to its budget), ENGINE_REPLICAS × DECODE_AT_END, 358 and
# 2,048 items, answers compared with the defaults'. With DECODE_AT_END=1 vLLM's API-side output
# handler (one for all replicas) no longer detokenizes every sequence at every step; the server
# decodes each answer once.
#   VARIANTS="1 0,1 1,2 0" bash bench/device_decode.sh COMMIT   # then "2 1,3 1,4 1" in a 2nd call
set -uo pipefail
commit=${1:-unknown}
export PYTHONPATH=/tmp/site:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
bash bench/device_model.sh
. bench/server_variants.sh
serve_variants dummy .bench/questions.json /tmp/q05 'ENGINE_EXTRA_ARGS={"load_format":"dummy"}'
