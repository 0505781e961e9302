#!/usr/bin/env bash
# Runs ON the H200 (vLLM staged in /tmp/site): why 2,048 prompts ran slower per token than 358.
# vLLM 0.25 on a >= 70 GiB GPU defaults `LLM` to max_num_seqs 1024 but captures CUDA graphs only
# up to min(2 x max_num_seqs, 512) sequences, so a decode step of 1,024 sequences runs without a
# graph. Three offline engines (bench_engine.py, 0.28 of the GPU each) start one after another,
# each once the previous one has sized its KV cache (vLLM's memory profiling must not overlap:
# side by side, one engine found no memory left), compile in parallel, then measure one at a
# time (--turn), on the same prompts:
#   seqs1024-graphs512   vLLM's own H200 default
#   seqs1024-graphs1024  the same with graphs captured up to 1,024 sequences
#   seqs512-graphs512    our server's default (MAX_NUM_SEQS=512)
#   bash bench/device_graphs.sh COMMIT
set -uo pipefail
commit=${1:-unknown}
export PYTHONPATH=/tmp/site:$PWD VLLM_USE_FLASHINFER_SAMPLER=0 PYTHONUNBUFFERED=1
bash bench/device_model.sh
out=${OUT:-/tmp/out}; turn=/tmp/turn; mkdir -p "$out" "$turn"
labels=(seqs1024-graphs512 seqs1024-graphs1024 seqs512-graphs512)
extra=(
  '{"load_format":"dummy"}'
  '{"load_format":"dummy","compilation_config":{"max_cudagraph_capture_size":1024}}'
  '{"load_format":"dummy"}'
)
seqs=(1024 1024 512)
declare -A pid
for i in 0 1 2; do
  env MODEL_DIR=/tmp/q05 GPU_MEMORY_UTILIZATION=0.28 MAX_NUM_SEQS=${seqs[$i]} \
    ENGINE_EXTRA_ARGS="${extra[$i]}" python3 bench/bench_engine.py \
    --questions .bench/questions.json --sizes 358,2048 --repeat 2 --label "${labels[$i]}" \
    --commit "$commit" --results "$out/graphs.jsonl" --turn $turn >"$out/${labels[$i]}.log" 2>&1 &
  pid[${labels[$i]}]=$!
  until grep -q "KV cache size" "$out/${labels[$i]}.log" 2>/dev/null \
    || ! kill -0 "${pid[${labels[$i]}]}" 2>/dev/null; do sleep 0.5; done
done
for label in "${labels[@]}"; do
  # wait until this engine is warm (or gone), then let it measure alone
  until [ -e "$turn/ready-$label" ] || ! kill -0 "${pid[$label]}" 2>/dev/null; do sleep 0.5; done
  touch "$turn/go-$label"
  until [ -e "$turn/done-$label" ] || ! kill -0 "${pid[$label]}" 2>/dev/null; do sleep 0.2; done
  grep -E "^seqs|engine init|Error" "$out/$label.log" | tail -8
  kill "${pid[$label]}" 2>/dev/null
done
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
wait
