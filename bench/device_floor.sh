#!/usr/bin/env bash
# Runs ON the H200 (vLLM staged in /tmp/site, bench/device_h200.sh's model dir in /tmp/q05):
# ENGINE_REPLICAS 1 vs 2 with answers kept for comparison, then the transformers floor on
# random bf16 weights (transformers cannot use vLLM's dummy loader).
#   bash bench/device_floor.sh COMMIT
set -uo pipefail
commit=${1:-unknown}
export PYTHONPATH=/tmp/site:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
bash bench/device_model.sh
out=${OUT:-/tmp/out}; m=/tmp/q05; d='ENGINE_EXTRA_ARGS={"load_format":"dummy"}'
for r in 1 2; do
  timeout 170 python3 bench/bench_server.py --questions .bench/questions.json --sizes 358 \
    --repeat 2 --model-dir $m --env "$d" --env ENGINE_REPLICAS=$r --label replicas-$r \
    --commit "$commit" --results "$out/floor.jsonl" --save-answers "$out" --log /tmp/s-$r.log
done
python3 bench/same_answers.py "$out/answers-replicas-1-358.json" "$out/answers-replicas-2-358.json"
w=/tmp/q05w
python3 -c "
import torch; from transformers import AutoConfig, AutoModelForCausalLM
torch.manual_seed(0)
m = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained('$m'), dtype=torch.bfloat16)
m.save_pretrained('$w')" && cp $m/tokenizer* $m/vocab.json $m/merges.txt $w/
timeout 240 python3 bench/bench_server.py --questions .bench/questions.json --sizes 358 \
  --repeat 1 --model-dir $w --env ENGINE=transformers --label transformers \
  --commit "$commit" --results "$out/floor.jsonl" --log "$out/hf.log"
