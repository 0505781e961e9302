#!/usr/bin/env bash
# Score a running server the way the grader does: accuracy (mean grader RougeL) and speed
# (chars/s), plus the CJK-aware score, tokens/s and a report, in artifacts/judge-<timestamp>/.
#   bash judge.sh                                   # the server on http://127.0.0.1:8000, all sets
#   WHICH=basic ENDPOINT=http://10.0.0.5:8000 bash judge.sh
#   with MODEL_DIR exported (as for the server), answer tokens are counted with its tokenizer
#   bash judge.sh --questions my.jsonl --max_n 50   # further args go to eval_local.py (--help)
# ARTIFACTS_DIR moves the output folder's parent. Defaults live in eval_local.py / Settings.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ -z "${VIRTUAL_ENV:-}" ] && [ -x "$here/.venv/bin/python" ]; then
  . "$here/.venv/bin/activate"
fi
stamp="$(date +%Y%m%d-%H%M%S)"
out="${ARTIFACTS_DIR:-$here/artifacts}/judge-$stamp"
n=1
while [ -e "$out" ]; do  # two runs within one second
  n=$((n + 1))
  out="${ARTIFACTS_DIR:-$here/artifacts}/judge-$stamp-$n"
done
mkdir -p "$out"
args=(--save-jsonl "$out/records.jsonl" --report "$out")
if [ -n "${WHICH:-}" ]; then args+=(--which "$WHICH"); fi
if [ -n "${ENDPOINT:-}" ]; then args+=(--endpoint "$ENDPOINT"); fi
status=0
python "$here/eval_local.py" "${args[@]}" "$@" || status=$?
echo "judge: records, report and plots in $out (exit $status)"
exit "$status"
