#!/usr/bin/env bash
# Issue #22 (performance, round two) ON the H200: vLLM 0.25 staged in /tmp/site, .bench/ carried
# (python bench/workloads.py). One phase per device call:
#   bash bench/device_round2.sh train COMMIT      # bench/train_realistic.py (TRAIN_S s), then on
#                                                 # its workload offline defaults vs the server's
#                                                 # defaults (CPU per process, py-spy)
#   bash bench/device_round2.sh levers COMMIT     # each lever off (GC_FREEZE, DEDUPE_QUESTIONS,
#                                                 # 1 replica), then the dummy workload
#   bash bench/device_round2.sh lease1|lease2 COMMIT  # a 30-minute lease in two calls: the
#                                                 # model, baseline, defaults, 3 then 4 replicas,
#                                                 # the dummy workload
#   bash bench/device_round2.sh replicas COMMIT   # realistic workload: 3 and 4 replicas; the
#                                                 # step curve with and without detokenization
# $OUT gets PHASE.jsonl (bench rows; finish them here with bench/ratios.py) and PHASE.tgz
# (answers, py-spy samples, logs).
set -uo pipefail
phase=$1 commit=${2:-unknown}
export PYTHONPATH=/tmp/site:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
export BENCH_RUN=round2-$phase-$(date +%s)
out=${OUT:-/tmp/out} work=/tmp/round2-$phase
mkdir -p "$out" "$work"
real=${REAL:-/tmp/real05} q=.bench/real358.json dup=.bench/real358_dup.json
n=${SIZE:-358} reps=${REPEAT:-10}  # SIZE=4 REPEAT=1 REAL=<tiny model>: a CPU dry run
dummy='ENGINE_EXTRA_ARGS={"load_format":"dummy"}'

offline() {  # LABEL MODEL QUESTIONS SIZES REPEAT [KEY=VALUE ...]: LLM.generate, vLLM's defaults
  local label=$1 model=$2 questions=$3 sizes=$4 repeat=$5
  shift 5
  env MODEL_DIR="$model" "$@" timeout 300 python3 bench/bench_engine.py --vllm-defaults \
    --questions "$questions" --sizes "$sizes" --repeat "$repeat" --label "$label" \
    --workload "$workload" --save-answers "$work" --commit "$commit" \
    --results "$out/$phase.jsonl" >"$work/$label.log" 2>&1
  grep -E "^$label|engine init|Error" "$work/$label.log" | tail -25
}

served() {  # LABEL SIZES REPEAT [bench_server.py args]: our server over HTTP, $model, $workload
  local label=$1 sizes=$2 repeat=$3
  shift 3
  timeout "${VARIANT_TIMEOUT:-240}" python3 bench/bench_server.py --model-dir "$model" \
    --sizes "$sizes" --repeat "$repeat" --label "$label" --workload "$workload" \
    --save-answers "$work" --pyspy-dir "$work" --commit "$commit" \
    --results "$out/$phase.jsonl" --log "$work/$label.log" "$@" || tail -n 25 "$work/$label.log"
}

nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv,noheader
case $phase in
  train)  # the model, then the realistic baseline and the server's defaults on it
    bash bench/device_model.sh
    python3 bench/train_realistic.py --config-dir /tmp/q05 --out $real --seconds "${TRAIN_S:-200}" \
      2>&1 | grep -vi warn | tail -n 40
    cp $real/train_summary.json "$out/"
    workload=realistic model=$real
    offline vllm-defaults $real $q $n $reps
    served defaults $n $reps --questions $q --questions $dup --cpu --pyspy-seconds 15
    ;;
  levers)  # each lever off on the realistic workload, then the dummy workload
    workload=realistic model=$real
    served gc-freeze-0 $n $reps --questions $q --questions $dup --env GC_FREEZE=0
    served dedupe-0 $n $reps --questions $dup --env DEDUPE_QUESTIONS=0
    served replicas-1 $n $reps --questions $q --env ENGINE_REPLICAS=1 --cpu
    workload=dummy model=/tmp/q05
    offline vllm-defaults /tmp/q05 .bench/questions.json 358,2048 3 "$dummy"
    served defaults 358,2048 3 --questions .bench/questions.json --env "$dummy" --cpu
    ;;
  short | lease1)  # a short lease: the model, its baseline, the defaults, then while time
    # lasts GC_FREEZE off (short) or 3 replicas (lease1, the first of a 30-minute lease's calls)
    bash bench/device_model.sh || exit 1
    python3 bench/train_realistic.py --config-dir /tmp/q05 --out $real --seconds "${TRAIN_S:-150}" \
      2>&1 | grep -vi warn | tail -n 12
    cp $real/train_summary.json "$out/"
    workload=realistic model=$real
    offline vllm-defaults $real $q $n $reps
    served defaults $n $reps --questions $q --questions $dup --cpu
    if [ "$phase" = short ]; then
      [ $SECONDS -lt 400 ] && served gc-freeze-0 $n $reps --questions $q --env GC_FREEZE=0
    else
      [ $SECONDS -lt 430 ] && served replicas-3 $n $reps --questions $q --env ENGINE_REPLICAS=3 --cpu
    fi
    ;;
  lease2)  # second call on the same machine: 4 replicas beside the defaults, the dummy workload
    workload=realistic model=$real
    served replicas-4 $n $reps --questions $q --env ENGINE_REPLICAS=4 --cpu
    served defaults-again $n $reps --questions $q
    workload=dummy model=/tmp/q05
    offline vllm-defaults /tmp/q05 .bench/questions.json 358,2048 3 "$dummy"
    [ $SECONDS -lt 450 ] && served defaults 358,2048 3 --questions .bench/questions.json \
      --env "$dummy" --cpu
    ;;
  dummy)  # the dummy workload alone: offline defaults vs the server's defaults
    workload=dummy model=/tmp/q05
    offline vllm-defaults /tmp/q05 .bench/questions.json 358,2048 3 "$dummy"
    served defaults 358,2048 3 --questions .bench/questions.json --env "$dummy" --cpu \
      --pyspy-seconds 12
    ;;
  replicas)
    workload=realistic model=$real
    offline vllm-defaults $real $q $n $reps
    served replicas-3 $n $reps --questions $q --env ENGINE_REPLICAS=3 --cpu
    served replicas-4 $n $reps --questions $q --env ENGINE_REPLICAS=4 --cpu
    # the step curve with and without vLLM's detokenizer (our engine settings, dummy weights)
    env MODEL_DIR=/tmp/q05 "$dummy" timeout 200 python3 bench/bench_engine.py --label steps \
      --questions .bench/questions.json --sizes '' --step-curve 1,16,64,179,358 --commit "$commit" \
      --results "$out/$phase.jsonl" 2>&1 | grep -E "^step curve|Error" | tail -12
    ;;
  *) echo "phase: train | short | levers | dummy | replicas | lease1 | lease2" >&2; exit 2 ;;
esac
tar -czf "$out/$phase.tgz" -C "$work" .
ls -la "$out"
