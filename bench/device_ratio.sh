#!/usr/bin/env bash
# Runs ON the H200 (vLLM staged in /tmp/site, bench/q05 in the tree), offline `LLM.generate` on the
# prompts and sampling parameters our server sends, dummy weights:
#   vllm-defaults  vLLM's own engine defaults: the baseline the goal's ratio is taken against
#   ours           our server's engine settings (the offline ceiling), then the step-time curve
#                  (bench/steps.py): where a decode step's time goes
#   ours-profiled  the same settings in an engine of its own with vLLM's torch profiler
#                  configured (that alone slowed the 358 batch by ~25 %), one profiled batch
#   bash bench/device_ratio.sh COMMIT
set -uo pipefail
commit=${1:-unknown}
export PYTHONPATH=/tmp/site:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
bash bench/device_model.sh
out=${OUT:-/tmp/out}; mkdir -p "$out"
run() {
  env MODEL_DIR=/tmp/q05 ENGINE_EXTRA_ARGS='{"load_format":"dummy"}' timeout 300 \
    python3 bench/bench_engine.py --questions .bench/questions.json --repeat 3 \
    --commit "$commit" --results "$out/ratio.jsonl" "$@" >"/tmp/$2.log" 2>&1
  grep -E "^(vllm-defaults|ours|step curve|profile)|engine init|Error" "/tmp/$2.log" | tail -20
}
run --label vllm-defaults --vllm-defaults --sizes 358,2048
run --label ours --sizes 358,2048 --step-curve 1,16,64,128,256,358
run --label ours-profiled --sizes '' --profile-dir /tmp/profile
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
