#!/usr/bin/env bash
# The CUDA path on a real GPU, in one call of a lent machine (Python 3.12 with torch, no TVM).
#
# Expects the TVM, tvm-ffi, xgboost-cpu and tornado files unpacked from .gpu1/-.gpu3/ (see
# experiments/results/README.md, "On a real GPU"), or an environment where `import tvm` works. Writes everything under $OUT:
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

source experiments/gpu_env.sh

describe_gpu

tune_and_replay "$TUNE_S" "$REPLAY_S"
echo "== benchmark (quick preset on this GPU, ${BENCH_S}s at most)"
timeout -s INT "$BENCH_S" python3 -m experiments.bench --preset quick --target cuda \
  --strategy chameleon --strategy evolutionary --strategy chameleon-no-bp --out online-cuda
echo "benchmark exit $?"
cp experiments/results/online-cuda.* "$OUT"/ 2>/dev/null
tar -czf "$OUT/runs-cuda.tar.gz" -C experiments/results/runs online-cuda 2>/dev/null

ls -la "$OUT"
