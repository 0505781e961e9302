#!/usr/bin/env bash
# Runs ON the H200 x2 machine (vLLM staged in /tmp/site, bench/q05 in the tree): our server over
# HTTP, dummy weights, DECODE_AT_END=1, 358 and 2,048 items:
#   gpu1     one GPU, one engine (the baseline: answers are compared with its)
#   tp2      TENSOR_PARALLEL_SIZE=2, one engine
#   dp2      DATA_PARALLEL_SIZE=2, one engine per GPU
#   dp2-r2   DATA_PARALLEL_SIZE=2 with ENGINE_REPLICAS=2: two engines per GPU
# in this order (run 5e0121a0 measured gpu1 and dp2 only: the device time ran out). NVLink
# multicast stays off (the machine's rule; set here again for the servers' env).
#   bash bench/device_multi_gpu.sh COMMIT
set -uo pipefail
commit=${1:-unknown}
export PYTHONPATH=/tmp/site:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
bash bench/device_model.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
. bench/server_variants.sh
d='ENGINE_EXTRA_ARGS={"load_format":"dummy"} DECODE_AT_END=1'
REF=gpu1 serve_settings multi-gpu .bench/questions.json /tmp/q05 \
  "gpu1 $d CUDA_VISIBLE_DEVICES=0 ENGINE_REPLICAS=1" "tp2 $d TENSOR_PARALLEL_SIZE=2 ENGINE_REPLICAS=1" \
  "dp2 $d DATA_PARALLEL_SIZE=2 ENGINE_REPLICAS=1" "dp2-r2 $d DATA_PARALLEL_SIZE=2 ENGINE_REPLICAS=2"
