#!/usr/bin/env bash
# ON the H200: Qwen2.5-0.5B architecture with random bf16 weights, quantized there to FP8 and
# AWQ W4A16 by quantize_awq.py, then bench/bench_engine.py on bf16, FP8 and W4A16 in one run
# (same prompts, greedy; random weights: answers run to their token budget).
# Before: ../shared/device/stage.sh put vLLM 0.25.0 into /tmp/site, and one call copied the
# pyarrow wheel: carry .bench/quant-pyarrow, `mkdir -p /tmp/quant-wheels && cp
# .bench/quant-pyarrow/*.whl /tmp/quant-wheels/` (bench/quant_wheels.sh made both folders here).
#   bash bench/device_quant.sh COMMIT [all|quantize|bench]
# carrying .bench/questions.json .bench/quant-wheels; `all` (~7 min) can also run as
# `quantize` then `bench` in two calls on the same warm machine (/tmp persists between them).
set -euo pipefail
commit=${1:-unknown} stage=${2:-all}
out=${OUT:-/tmp/out}; mkdir -p "$out"
export VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1 TQDM_DISABLE=1
export BENCH_RUN=${BENCH_RUN:-quant-$(date +%s)}
[ -f /tmp/site/vllm/__init__.py ] || { echo "no vLLM in /tmp/site: stage it first" >&2; exit 1; }
log=$out/device_quant.log
quant() { env PYTHONPATH=/tmp/quant-site:/tmp/site:$PWD python3 "$@" >>"$log" 2>&1; }
serve() { env PYTHONPATH=/tmp/site:$PWD python3 "$@"; }
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
if [ "$stage" != bench ]; then
mkdir -p /tmp/quant-wheels && cp .bench/quant-wheels/*.whl /tmp/quant-wheels/
ls /tmp/quant-wheels/pyarrow-*.whl >/dev/null 2>&1 \
  || { echo "no pyarrow wheel in /tmp/quant-wheels: copy .bench/quant-pyarrow there first" >&2; exit 1; }
if [ ! -f /tmp/quant-site/llmcompressor/__init__.py ]; then
  # apart from /tmp/site: llm-compressor pins compressed-tensors 0.19.0, vLLM 0.25 0.17.0
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/quant-site /tmp/quant-wheels/*.whl
fi
bash bench/device_model.sh  # /tmp/q05: the config plus the real Qwen tokenizer
serve bench/quant_prepare.py --config-dir /tmp/q05 --out /tmp/q05-bf16 \
  --questions .bench/questions.json --calibration /tmp/q05-calib.jsonl
start=$(date +%s)
quant quantize_awq.py --model /tmp/q05-bf16 --out /tmp/q05-fp8 --scheme fp8 --no-verify --overwrite \
  || { tail -30 "$log"; exit 1; }
echo "fp8 quantized in $(( $(date +%s) - start )) s"; start=$(date +%s)
quant quantize_awq.py --model /tmp/q05-bf16 --out /tmp/q05-w4a16 --scheme w4a16 --no-verify \
  --overwrite --data /tmp/q05-calib.jsonl --num-samples "${SAMPLES:-32}" --max-seq-len 512 \
  || { tail -30 "$log"; exit 1; }
echo "w4a16 quantized in $(( $(date +%s) - start )) s"
grep -E "quantized /tmp|weights .* MiB|calibration:" "$log" || true
for v in fp8 w4a16; do cp /tmp/q05-$v/quant_info.json "$out/quant_info_$v.json"; done
fi
[ "$stage" = quantize ] && exit 0
for v in bf16 fp8 w4a16; do
  MODEL_DIR=/tmp/q05-$v serve bench/bench_engine.py --questions .bench/questions.json \
    --sizes "${SIZES:-358}" --repeat "${REPEAT:-2}" --label "quant-$v" --commit "$commit" \
    --results "$out/results.jsonl" >>"$out/bench.log" 2>&1 || { tail -30 "$out/bench.log"; exit 1; }
  grep -E "^(engine init|quant-$v)" "$out/bench.log" | tail -4
done
