#!/usr/bin/env bash
# The MetaX image runs Python 3.10 and vLLM 0.10: the package must import and build its app there.
#   bash scripts/py310_check.sh
# 1. vermin: no syntax or standard-library use newer than 3.10 (needs only the dev venv);
# 2. where a python3.10 exists (pyenv here), a 3.10 venv with the serving set plus the evaluation
#    and tuning sets (requirements.txt, requirements/eval.txt, requirements/tune.txt: what importing
#    every module needs) imports every module and builds the app (the engines' heavy imports and
#    the merge tool's peft are lazy, so no torch/vLLM needed).
set -euo pipefail
cd "$(dirname "$0")/.."
vermin -t=3.10- --violations --no-tips --quiet qaserve ./*.py
py310=""
for candidate in python3.10 "$(pyenv root 2>/dev/null)"/versions/3.10*/bin/python3.10; do
  if "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then
    py310=$candidate; break
  fi
done
if [ -z "$py310" ]; then
  echo "py310: no python3.10 here; checked with vermin only"
  exit 0
fi
venv=.venv310
[ -x $venv/bin/python ] || "$py310" -m venv $venv
reqs=(requirements.txt requirements/eval.txt requirements/tune.txt)
stamp=$venv/.installed-$(cat "${reqs[@]}" | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "py310: installing ${reqs[*]} into $venv"
  $venv/bin/python -m pip install -q -U pip
  $venv/bin/python -m pip install -q -r requirements.txt -r requirements/eval.txt \
    -r requirements/tune.txt
  touch "$stamp"
fi
$venv/bin/python - <<'PY'
import importlib, pkgutil, sys
import qaserve
names = [m.name for m in pkgutil.walk_packages(qaserve.__path__, "qaserve.")]
for name in names:
    importlib.import_module(name)
from qaserve.server.app import create_app
from qaserve.settings import load_settings
create_app(load_settings())
print(f"py310: Python {sys.version.split()[0]} imported {len(names)} modules and built the app")
PY
