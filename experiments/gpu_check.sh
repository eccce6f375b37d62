#!/usr/bin/env bash
# The CUDA path on a real GPU, in one call of a lent machine (Python 3.12 with torch, no TVM).
#
# Expects the TVM, tvm-ffi, xgboost-cpu and tornado files unpacked from .gpu1/ and .gpu2/ (see
# README "GPU"), or an environment where `import tvm` works. Writes everything under $OUT:
#   1. the device as TVM sees it, and the blueprint it resolves to;
#   2. `chameleon tune` of ResNet-18 for a fixed time, then `chameleon replay` (tuned vs untuned
#      vs PyTorch eager on the same GPU);
#   3. the quick online benchmark on the local GPU (chameleon, evolutionary, chameleon-no-bp),
#      for what time is left (on an H200 one 64-measurement chameleon run took ~190 s).
# Each step has its own time limit (SIGINT: the run stops after the round in flight and keeps
# its records). The defaults fit one 10-minute call.
set -u
OUT=${OUT:-/tmp/gpu-check}
TUNE_S=${TUNE_S:-150}
REPLAY_S=${REPLAY_S:-150}
BENCH_S=${BENCH_S:-220}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1

if ! python3 -c "import tvm" 2>/dev/null; then
  SITE=/tmp/site
  mkdir -p "$SITE"
  parts=""
  for p in aa ab; do  # libtvm_compiler.so, xz-compressed and split in two (one per call)
    parts="$parts $(ls /root/parts/c.part.$p .gpu1/c.part.$p .gpu2/c.part.$p 2>/dev/null | head -1)"
  done
  echo "unpacking:$parts"
  cat $parts | xz -d | tar -C "$SITE" -xf - || { echo "libtvm_compiler parts missing or broken"; exit 3; }
  xz -d < .gpu2/rest.tar.xz | tar -C "$SITE" -xf - || exit 3
  export PYTHONPATH="$SITE:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1
command -v nvcc >/dev/null && export TVM_CUDA_COMPILE_MODE=nvcc

echo "== device"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv
python3 - <<'EOF'
import tvm
from chameleon.hardware.targets import resolve_target
from chameleon.hardware.target_blueprint import blueprint_for_target
d = tvm.cuda(0)
print("tvm.cuda(0):", d.exist, d.device_name, d.compute_version, "SMs", d.multi_processor_count,
      "L2", d.l2_cache_size_bytes, "smem/block", d.max_shared_memory_per_block)
spec = resolve_target("cuda")
print("target:", spec.target_json)
print("blueprint:", blueprint_for_target(spec.target_json).name)
EOF

echo "== tune ResNet-18 on this GPU (${TUNE_S}s), then replay"
timeout -s INT "$TUNE_S" python3 -m chameleon tune --model resnet18 --target cuda --trials 400 \
  --log-dir tuning_logs/resnet18/cuda
echo "tune exit $?"
timeout -s INT "$REPLAY_S" python3 -m chameleon replay tuning_logs/resnet18/cuda --json > "$OUT/replay.json"
echo "replay exit $?"
cat "$OUT/replay.json"
tar -czf "$OUT/log-cuda.tar.gz" -C tuning_logs/resnet18 cuda
echo "== benchmark (quick preset on this GPU, ${BENCH_S}s at most)"
timeout -s INT "$BENCH_S" python3 -m experiments.bench --preset quick --target cuda \
  --strategy chameleon --strategy evolutionary --strategy chameleon-no-bp --out online-cuda
echo "benchmark exit $?"
cp experiments/results/online-cuda.* "$OUT"/ 2>/dev/null
tar -czf "$OUT/runs-cuda.tar.gz" -C experiments/results/runs online-cuda 2>/dev/null

ls -la "$OUT"
