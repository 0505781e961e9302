#!/usr/bin/env bash
# Runs ON the H200 (vLLM staged in /tmp/site): the bundled demo model (real weights, so answers
# end at <|im_end|> as a fine-tuned model's do) served over HTTP with one, two and three engine
# replicas and DECODE_AT_END off/on, on the 135 held-out questions cycled to 358 and 2,048
# items; answers kept and compared with the first variant's.
#   bash bench/device_demo.sh COMMIT          # SIZES=8 REPEAT=1 ENFORCE_EAGER=1: a CPU dry run
set -uo pipefail
commit=${1:-unknown}
export PYTHONPATH=/tmp/site:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
out=${OUT:-/tmp/out}; mkdir -p "$out"; q=/tmp/heldout.json; SIZES=${SIZES:-358,2048}
python3 -c "
import json
rows = [json.loads(line) for line in open('data_heldout.jsonl', encoding='utf-8')]
users = [[m['content'] for m in r['messages'] if m['role'] == 'user'][-1] for r in rows]
json.dump(users, open('$q', 'w', encoding='utf-8'), ensure_ascii=False)"
variants=("1 0" "2 0" "2 1" "3 1")
for v in "${variants[@]}"; do
  read -r r decode <<<"$v"
  label="demo-replicas-$r-decode-at-end-$decode"
  timeout 220 python3 bench/bench_server.py --questions $q --sizes "$SIZES" --repeat "${REPEAT:-3}" \
    --model-dir demo_model --env ENGINE_REPLICAS=$r --env DECODE_AT_END=$decode \
    --label "$label" --commit "$commit" --results "$out/demo.jsonl" --save-answers "$out" \
    --log "/tmp/$label.log"
  [ "$label" = demo-replicas-1-decode-at-end-0 ] || python3 bench/same_answers.py \
    "$out/answers-demo-replicas-1-decode-at-end-0-${SIZES%%,*}.json" \
    "$out/answers-$label-${SIZES%%,*}.json"
done
