#!/usr/bin/env bash
# Issue 5's GPU transfer, in one call of a lent machine: each strategy cold against the same strategy
# whose cost model is first trained on another GPU's logs, same task, budget and seed, side by side.
# The other GPU's logs: on an H200, the H100 runs of session 8 (runs-transfer-cuda-h100.tar.gz);
# on any other GPU, the H200 runs of session 6 (runs-cuda-h200.tar.gz); SRC_TAR overrides. Then,
# with the time left, `chameleon tune` of ResNet-18 on this GPU and `chameleon replay` (tuned vs
# untuned vs PyTorch eager on the same GPU).
#
# Prepare and call it like experiments/gpu_check.sh (experiments/results/README.md, "On a real GPU"). Everything lands under $OUT.
# TOTAL_S bounds the whole script; each step stops with SIGINT (the run ends after the round in
# flight and keeps its records). SEED picks the benchmark's seed (the warm-start logs stay the other
# GPU's seed-0 runs); summarise seeds together here with experiments/bench.py --no-run --with-csv.
set -u
OUT=${OUT:-/tmp/gpu-transfer}
TOTAL_S=${TOTAL_S:-540}
TRIALS=${TRIALS:-64}
BENCH_S=${BENCH_S:-400}
TASK=${TASK:-fused_conv2d_subtract_divide_multiply_add1_relu}
STRATEGIES=${STRATEGIES:-chameleon evolutionary}
SEED=${SEED:-0}
start=$(date +%s)
left() { echo $((TOTAL_S - ($(date +%s) - start))); }
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1

source experiments/gpu_env.sh
describe_gpu

if [ -z "${SRC_TAR:-}" ]; then
  if nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200; then
    SRC_TAR=experiments/results/runs-transfer-cuda-h100.tar.gz
  else
    SRC_TAR=experiments/results/runs-cuda-h200.tar.gz
  fi
fi
SRC=/tmp/warm-logs
mkdir -p "$SRC" && tar -xzf "$SRC_TAR" -C "$SRC"
warm="" strategies=""
for run in $(find "$SRC" -path "*/$TASK/*-s0" -type d | sort); do warm="$warm --warm-start $run"; done
for s in $STRATEGIES; do strategies="$strategies --strategy $s"; done
echo "== transfer from $SRC_TAR:$strategies, each cold and +warm ($warm), $TRIALS measurements, seed $SEED (${BENCH_S}s at most)"
timeout -s INT "$BENCH_S" python3 -m experiments.bench --target cuda --task "$TASK" --trials "$TRIALS" \
  --seed "$SEED" $strategies $warm --baseline "${STRATEGIES%% *}" --out transfer-cuda
echo "benchmark exit $?"
cp experiments/results/transfer-cuda.* "$OUT"/ 2>/dev/null
tar -czf "$OUT/runs-transfer-cuda.tar.gz" -C experiments/results/runs transfer-cuda 2>/dev/null

if [ "$(left)" -gt 150 ]; then
  tune_s=$(($(left) / 3))
  tune_and_replay "$tune_s" "$(($(left) - tune_s - 15))"
fi
ls -la "$OUT"
