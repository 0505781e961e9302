#!/usr/bin/env bash
# Runs ON the H200 x2 machine (vLLM staged in /tmp/site, .bench/q05 carried): our server over
# HTTP, dummy weights, DATA_PARALLEL_SIZE=2 and TENSOR_PARALLEL_SIZE=2 against one GPU, in this
# order (the likely winner first, in case the device time runs out), one engine per model copy
# (ENGINE_REPLICAS=1), 358 and 2,048 items.
# NVLink multicast stays off (the machine's rule; set here again for the servers' env).
#   bash bench/device_multi_gpu.sh COMMIT
set -uo pipefail
commit=${1:-unknown}
export PYTHONPATH=/tmp/site:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
bash bench/device_model.sh
out=${OUT:-/tmp/out}; mkdir -p "$out"; d='ENGINE_EXTRA_ARGS={"load_format":"dummy"}'
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for v in "DATA_PARALLEL_SIZE=2 dp2" "CUDA_VISIBLE_DEVICES=0 gpu1" "TENSOR_PARALLEL_SIZE=2 tp2"; do
  read -r setting label <<<"$v"
  timeout "${VARIANT_TIMEOUT:-200}" python3 bench/bench_server.py --questions .bench/questions.json \
    --sizes "${SIZES:-358,2048}" --repeat "${REPEAT:-2}" --model-dir /tmp/q05 --env "$d" \
    --env DECODE_AT_END=1 --env ENGINE_REPLICAS=1 --env "$setting" --label "multi-gpu-$label" --commit "$commit" \
    --results "$out/multi_gpu.jsonl" --log "/tmp/$label.log" || tail -n 15 "/tmp/$label.log"
done
