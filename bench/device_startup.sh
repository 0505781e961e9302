#!/usr/bin/env bash
# Runs ON the H200 (vLLM staged in /tmp/site, bench/q05 in the tree): time to ready from process
# start with COLD compile caches (each variant gets empty vLLM / inductor / Triton cache folders,
# as on a fresh grading machine), then warm, dummy weights, answers compared with cold-defaults':
#   cold-defaults     the server as shipped, nothing compiled yet
#   warm-defaults     the same, its caches now filled by cold-defaults
#   cold-info-cached  cold, but vLLM's model-info cache filled first (python -m qaserve.modeltools.vllm_cache,
#                     as the Docker images do at build time)
#   cold-no-compile   compilation_config mode 0: no torch.compile (vLLM's own kernels), with
#                     full CUDA graphs for decode steps (mode 0 alone turns graphs off in vLLM 0.25)
# The servers' logs come back in $OUT (where the start-up time goes).
#   bash bench/device_startup.sh COMMIT      # ~8 min, 358 items (SIZES=358,2048 adds ~1 min)
set -uo pipefail
commit=${1:-unknown}
export PYTHONPATH=/tmp/site:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
bash bench/device_model.sh
. bench/server_variants.sh
caches() { echo "VLLM_CACHE_ROOT=$1 TORCHINDUCTOR_CACHE_DIR=$1/inductor TRITON_CACHE_DIR=$1/triton"; }
export SIZES=${SIZES:-358}
rm -rf /tmp/cold-1 /tmp/cold-2 /tmp/cold-3
VLLM_CACHE_ROOT=/tmp/cold-3 python3 -m qaserve.modeltools.vllm_cache /tmp/q05 2>&1 | tail -n 1
d='ENGINE_EXTRA_ARGS={"load_format":"dummy"}'
nc='ENGINE_EXTRA_ARGS={"load_format":"dummy","compilation_config":{"mode":0,"cudagraph_mode":"FULL_DECODE_ONLY"}}'
serve_settings startup .bench/questions.json /tmp/q05 "cold-defaults $d $(caches /tmp/cold-1)" \
  "warm-defaults $d $(caches /tmp/cold-1)" "cold-info-cached $d $(caches /tmp/cold-3)" \
  "cold-no-compile $nc $(caches /tmp/cold-2)"
cp /tmp/startup-*.log "${OUT:-/tmp/out}/"
