#!/usr/bin/env bash
# On the lent H200 (device tool): train demo-model candidates side by side (the GPU idles on a
# model this small) and pack each into one tar in $OUT (files of at most 16 MiB come back).
#   device run: bash scripts/device_train_demo.sh a:1500 b:3000     # NAME:STEPS ...
# Extra training flags go in TRAIN_ARGS (e.g. TRAIN_ARGS="--hidden 64 --layers 1").
set -euo pipefail
: "${OUT:?set OUT to the folder that comes back}"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/gpu.txt" 2>&1 || true
python -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" >> "$OUT/gpu.txt"
for spec in "$@"; do
  name=${spec%%:*}
  # shellcheck disable=SC2086
  python train_demo_model.py --out "/tmp/demo_$name" --overwrite --steps "${spec#*:}" --no-plot \
    ${TRAIN_ARGS:-} > "/tmp/train_$name.log" 2>&1 &
done
wait
for spec in "$@"; do
  name=${spec%%:*}
  grep -vE "Writing model shards" "/tmp/train_$name.log" | tail -n 30
  tar cf "$OUT/$name-meta.tar" -C "/tmp/demo_$name" --exclude='*.safetensors' .
  for f in "/tmp/demo_$name"/*.safetensors; do cp "$f" "$OUT/$name-$(basename "$f")"; done
done
ls -la "$OUT"
