#!/usr/bin/env bash
# Runs ON the H200 (vLLM staged in /tmp/site): the bundled demo model (real weights, so answers
# end at <|im_end|> as a fine-tuned model's do) served over HTTP, ENGINE_REPLICAS ×
# DECODE_AT_END, on the 135 held-out questions cycled to 358 and 2,048 items; answers compared
# with the defaults'.
#   VARIANTS="1 0,2 0,2 1,3 1" bash bench/device_demo.sh COMMIT
#   SIZES=24 REPEAT=1 ENFORCE_EAGER=1 bash bench/device_demo.sh   # a CPU dry run
set -uo pipefail
commit=${1:-unknown}
export PYTHONPATH=/tmp/site:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
q=/tmp/heldout.json
python3 -c "
import json
rows = [json.loads(line) for line in open('data_heldout.jsonl', encoding='utf-8')]
users = [[m['content'] for m in r['messages'] if m['role'] == 'user'][-1] for r in rows]
json.dump(users, open('$q', 'w', encoding='utf-8'), ensure_ascii=False)"
. bench/server_variants.sh
VARIANTS=${VARIANTS:-1 0,2 0,2 1,3 1} serve_variants demo $q demo_model
