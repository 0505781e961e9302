#!/usr/bin/env bash
# Runs ON the H200 (vLLM staged in /tmp/site, .bench/q05 carried): DECODE_AT_END off/on with one
# and two engine replicas, our server over HTTP, 358 and 2,048 items, answers kept and compared.
# With DECODE_AT_END=1 vLLM's API-side output handler (one for all replicas) no longer
# detokenizes every sequence at every step; the server decodes each answer once.
#   bash bench/device_decode.sh COMMIT
set -uo pipefail
commit=${1:-unknown}
export PYTHONPATH=/tmp/site:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
bash bench/device_model.sh
out=${OUT:-/tmp/out}; mkdir -p "$out"; m=/tmp/q05; d='ENGINE_EXTRA_ARGS={"load_format":"dummy"}'
for r in 1 2; do
  for decode in 0 1; do
    timeout 200 python3 bench/bench_server.py --questions .bench/questions.json \
      --sizes 358,2048 --repeat 3 --model-dir $m --env "$d" --env ENGINE_REPLICAS=$r \
      --env DECODE_AT_END=$decode --label "replicas-$r-decode-at-end-$decode" \
      --commit "$commit" --results "$out/decode.jsonl" --save-answers "$out" \
      --log "/tmp/s-$r-$decode.log"
  done
  python3 bench/same_answers.py "$out/answers-replicas-$r-decode-at-end-0-358.json" \
    "$out/answers-replicas-$r-decode-at-end-1-358.json"
done
