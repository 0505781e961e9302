#!/usr/bin/env bash
# Sourced by the device_*.sh scripts (ON the H200, vLLM staged in /tmp/site).
#
#   serve_settings PREFIX QUESTIONS MODEL_DIR "LABEL KEY=VALUE ..." ["LABEL KEY=VALUE ..." ...]
# runs bench_server.py once per variant (server settings without spaces in their values), SIZES
# items (default 358,2048), REPEAT runs each (default 2). Each variant's answers stay in
# /tmp/answers, which outlives a call while the machine is warm, and are compared at every size
# with those of PREFIX-${REF:-<the first variant's label>}.
#
#   serve_variants PREFIX QUESTIONS MODEL_DIR [KEY=VALUE ...]
# the same over the "REPLICAS DECODE_AT_END" pairs of VARIANTS (comma-separated), compared with
# PREFIX-replicas-1-decode-at-end-0 (the old defaults); KEY=VALUE apply to every variant.
serve_settings() {
  local prefix=$1 questions=$2 model=$3
  shift 3
  local out=${OUT:-/tmp/out} answers=/tmp/answers sizes=${SIZES:-358,2048}
  local ref="$prefix-${REF:-${1%% *}}" v label settings s size
  local -a envs
  mkdir -p "$out" "$answers"
  for v in "$@"; do
    read -r label settings <<<"$v"
    label="$prefix-$label"
    envs=()
    for s in $settings; do envs+=(--env "$s"); done
    timeout "${VARIANT_TIMEOUT:-200}" python3 bench/bench_server.py --questions "$questions" \
      --sizes "$sizes" --repeat "${REPEAT:-2}" --model-dir "$model" "${envs[@]}" \
      --label "$label" --commit "${commit:-unknown}" --results "$out/$prefix.jsonl" \
      --save-answers "$answers" --log "/tmp/$label.log" || tail -n 15 "/tmp/$label.log"
    [ "$label" = "$ref" ] && continue
    for size in ${sizes//,/ }; do
      [ -e "$answers/answers-$ref-$size.json" ] && [ -e "$answers/answers-$label-$size.json" ] \
        && python3 bench/same_answers.py "$answers/answers-$ref-$size.json" \
          "$answers/answers-$label-$size.json" | tee -a "$out/$prefix-same.txt"
    done
  done
}

serve_variants() {
  local prefix=$1 questions=$2 model=$3
  shift 3
  local pairs v r decode
  local -a variants=()
  IFS=, read -ra pairs <<<"${VARIANTS:-1 0,1 1,2 0,2 1}"
  for v in "${pairs[@]}"; do
    read -r r decode <<<"$v"
    variants+=("replicas-$r-decode-at-end-$decode ENGINE_REPLICAS=$r DECODE_AT_END=$decode $*")
  done
  REF=replicas-1-decode-at-end-0 serve_settings "$prefix" "$questions" "$model" "${variants[@]}"
}
