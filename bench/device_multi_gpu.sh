#!/usr/bin/env bash
# Runs ON the H200 x2 machine (vLLM staged in /tmp/site, .bench/q05 carried): our server over
# HTTP, dummy weights, DECODE_AT_END=1, 358 and 2,048 items:
#   tp2      TENSOR_PARALLEL_SIZE=2, one engine
#   gpu1     one GPU, one engine (the baseline)
#   dp2      DATA_PARALLEL_SIZE=2, one engine per GPU
#   dp2-r2   DATA_PARALLEL_SIZE=2 with ENGINE_REPLICAS=2: two engines per GPU
# in this order (what is still unmeasured first, in case the device time runs out; run
# 5e0121a0 measured dp2 and gpu1). NVLink multicast stays off (the machine's rule; set here
# again for the servers' env).
#   bash bench/device_multi_gpu.sh COMMIT
set -uo pipefail
commit=${1:-unknown}
export PYTHONPATH=/tmp/site:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
bash bench/device_model.sh
out=${OUT:-/tmp/out}; mkdir -p "$out"; d='ENGINE_EXTRA_ARGS={"load_format":"dummy"}'
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
variants=(
  "tp2 TENSOR_PARALLEL_SIZE=2 ENGINE_REPLICAS=1"
  "gpu1 CUDA_VISIBLE_DEVICES=0 ENGINE_REPLICAS=1"
  "dp2 DATA_PARALLEL_SIZE=2 ENGINE_REPLICAS=1"
  "dp2-r2 DATA_PARALLEL_SIZE=2 ENGINE_REPLICAS=2"
)
for v in "${variants[@]}"; do
  read -r label settings <<<"$v"
  envs=(); for s in $settings; do envs+=(--env "$s"); done
  timeout "${VARIANT_TIMEOUT:-200}" python3 bench/bench_server.py --questions .bench/questions.json \
    --sizes "${SIZES:-358,2048}" --repeat "${REPEAT:-2}" --model-dir /tmp/q05 --env "$d" \
    --env DECODE_AT_END=1 "${envs[@]}" --label "multi-gpu-$label" --commit "$commit" \
    --results "$out/multi_gpu.jsonl" --log "/tmp/$label.log" || tail -n 15 "/tmp/$label.log"
done
