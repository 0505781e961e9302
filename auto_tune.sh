#!/usr/bin/env bash
# Overnight auto-tuner (README "Auto-tuning"): the fastest server settings (grader chars/s) whose
# grader accuracy stays >= ACC, in a study that resumes after any stop.
#   ./auto_tune.sh                                   # start or resume study $TUNE_STUDY
#   ACC=0.40 EVAL_RUNS=3 ./auto_tune.sh --questions held_out.jsonl
#   ./auto_tune.sh --report                          # plots + summary of the study so far
#   touch tune_out/<study>/STOP                      # end after the current trial
# Variables (flags beat them): ACC, ACC_DROP, EVAL_RUNS, STARTUP_TIMEOUT, EVAL_TIMEOUT,
# TUNE_SEARCH_SPACE_FILE, TUNE_STUDY, TUNE_N_TRIALS, TUNE_MAX_HOURS, ... (python auto_tune.py --help);
# the server's own variables (MODEL_DIR, ...) set the reference trial. Notification secrets go in
# tune_secrets.sh (see tune_secrets.sh.example), sourced here. Defaults: qaserve/tuning/config.py.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
if [ -f tune_secrets.sh ]; then
  case "$(stat -c %a tune_secrets.sh 2>/dev/null || echo 600)" in
    *00) ;;
    *) echo "auto_tune.sh: tune_secrets.sh is readable by others: chmod 600 tune_secrets.sh" >&2 ;;
  esac
  set -a  # every assignment in it is exported to the tuner (never to the trial servers)
  . ./tune_secrets.sh
  set +a
fi
if [ -z "${VIRTUAL_ENV:-}" ] && [ -x .venv/bin/python ]; then
  . .venv/bin/activate
fi
py="$(command -v python || command -v python3)"
exec "$py" auto_tune.py "$@"
