#!/usr/bin/env bash
# Runs ON the H200 (vLLM staged in /tmp/site, bench/q05 in the tree): the engine knobs #3 lists
# that no run has measured yet, each against the server's defaults in the same call, dummy
# weights, 358 and 2,048 items, answers compared with the defaults':
#   defaults          the server as shipped
#   fp8-kv            VLLM_KV_CACHE_DTYPE=fp8
#   no-prefix-cache   ENABLE_PREFIX_CACHING=0 (the system prompt's KV is computed per question)
#   batched-2k/8k     MAX_NUM_BATCHED_TOKENS 2048 (vLLM's async engine default) / 8192 (ours: 32768)
#   bash bench/device_knobs.sh COMMIT    # ~10 min (over one call): SIZES=358, then SIZES=2048
set -uo pipefail
commit=${1:-unknown}
export PYTHONPATH=/tmp/site:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
bash bench/device_model.sh
. bench/server_variants.sh
d='ENGINE_EXTRA_ARGS={"load_format":"dummy"}'
serve_settings knobs .bench/questions.json /tmp/q05 "defaults $d" "fp8-kv $d VLLM_KV_CACHE_DTYPE=fp8" \
  "no-prefix-cache $d ENABLE_PREFIX_CACHING=0" "batched-2k $d MAX_NUM_BATCHED_TOKENS=2048" \
  "batched-8k $d MAX_NUM_BATCHED_TOKENS=8192"
cp /tmp/knobs-*.log "${OUT:-/tmp/out}/"
