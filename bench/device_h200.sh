#!/usr/bin/env bash
# Runs ON the lent H200 after ../shared/device/stage.sh put vLLM 0.25.0 into /tmp/site.
# Qwen2.5-0.5B architecture with dummy weights (answers run to their token budget), the real
# Qwen tokenizer; our server end to end, then the offline LLM.generate ceiling, same prompts.
#   bash bench/device_h200.sh COMMIT
set -euo pipefail
commit=${1:-unknown}
export PYTHONPATH=/tmp/site:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
out=${OUT:-/tmp/out}; mkdir -p "$out"
model=/tmp/q05
bash bench/device_model.sh
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv
dummy='ENGINE_EXTRA_ARGS={"load_format":"dummy"}'
python3 bench/bench_server.py --questions .bench/questions.json --sizes ${SIZES:-358,292,2048} \
  --repeat 3 --model-dir $model --env "$dummy" --label server --commit "$commit" \
  --results "$out/results.jsonl" --log "$out/server.log"
env MODEL_DIR=$model "$dummy" python3 bench/bench_engine.py --questions .bench/questions.json \
  --sizes ${SIZES:-358,292,2048} --repeat 3 --commit "$commit" --results "$out/results.jsonl" \
  2>&1 | grep -vE "^\(|INFO|WARNING" | tail -20
