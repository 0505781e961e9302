#!/usr/bin/env bash
# Keep the tuner going overnight: resume it after a crash, stop once the study is finished.
#   nohup ./run_autotune_forever.sh --questions held_out.jsonl > autotune.log 2>&1 &
#   systemd: autotune.service.example
# Arguments go to auto_tune.sh. Its exit code decides: 0 (finished, TUNE_MAX_HOURS reached or a
# STOP file), 2 (bad settings/space/questions), 3 (another tuner runs the study), 4 (gave up after
# TUNE_MAX_FAIL_STREAK failed trials), 130/143 (stopped by a signal): stop here too. Anything else
# (1: a crash, a port that stayed busy): wait RESTART_DELAY s (30, doubling to 15 min; reset after
# a run of 10+ min) and resume, at most MAX_RESTARTS (50) times.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
delay="${RESTART_DELAY:-30}"
max="${MAX_RESTARTS:-50}"
restarts=0
child=""
stop() {
  echo "$(date -Is) run_autotune_forever: stopping the tuner (it stops its server)"
  if [ -n "$child" ]; then
    kill -TERM "$child" 2>/dev/null
    wait "$child"
  fi
  exit 143
}
trap stop TERM INT HUP
while true; do
  started=$SECONDS
  "$here/auto_tune.sh" "$@" &
  child=$!
  wait "$child"
  code=$?
  child=""
  case "$code" in
    0) echo "$(date -Is) run_autotune_forever: done (exit 0)"; exit 0 ;;
    2|3|4|130|143) echo "$(date -Is) run_autotune_forever: auto_tune.sh exited $code: not restarting"; exit "$code" ;;
  esac
  if [ $((SECONDS - started)) -ge 600 ]; then
    delay="${RESTART_DELAY:-30}"
  fi
  restarts=$((restarts + 1))
  if [ "$restarts" -gt "$max" ]; then
    echo "$(date -Is) run_autotune_forever: $max restarts used up; giving up" >&2
    exit 1
  fi
  echo "$(date -Is) run_autotune_forever: auto_tune.sh exited $code; restart $restarts/$max in ${delay}s" >&2
  sleep "$delay" &
  wait $!
  delay=$((delay * 2 > 900 ? 900 : delay * 2))
done
