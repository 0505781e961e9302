#!/usr/bin/env bash
# Sourced by the device_*.sh scripts (ON the H200, vLLM staged in /tmp/site):
#   serve_variants PREFIX QUESTIONS MODEL_DIR [--env KEY=VALUE ...]
# runs bench_server.py once per "REPLICAS DECODE_AT_END" pair of VARIANTS (comma-separated),
# SIZES items (default 358,2048), REPEAT runs each (default 2). Each variant's answers stay in
# /tmp/answers, which outlives a call while the machine is warm, and are compared with those of
# PREFIX-replicas-1-decode-at-end-0 (the server's defaults) at every size.
serve_variants() {
  local prefix=$1 questions=$2 model=$3
  shift 3
  local out=${OUT:-/tmp/out} answers=/tmp/answers sizes=${SIZES:-358,2048}
  local ref="$prefix-replicas-1-decode-at-end-0" pairs v r decode label size
  mkdir -p "$out" "$answers"
  IFS=, read -ra pairs <<<"${VARIANTS:-1 0,1 1,2 0,2 1}"
  for v in "${pairs[@]}"; do
    read -r r decode <<<"$v"
    label="$prefix-replicas-$r-decode-at-end-$decode"
    timeout "${VARIANT_TIMEOUT:-200}" python3 bench/bench_server.py --questions "$questions" \
      --sizes "$sizes" --repeat "${REPEAT:-2}" --model-dir "$model" "$@" \
      --env ENGINE_REPLICAS="$r" --env DECODE_AT_END="$decode" --label "$label" \
      --commit "${commit:-unknown}" --results "$out/$prefix.jsonl" --save-answers "$answers" \
      --log "/tmp/$label.log" || tail -n 15 "/tmp/$label.log"
    [ "$label" = "$ref" ] && continue
    for size in ${sizes//,/ }; do
      [ -e "$answers/answers-$ref-$size.json" ] && [ -e "$answers/answers-$label-$size.json" ] \
        && python3 bench/same_answers.py "$answers/answers-$ref-$size.json" \
          "$answers/answers-$label-$size.json" | tee -a "$out/$prefix-same.txt"
    done
  done
}
