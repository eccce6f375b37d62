# Sourced by the GPU scripts: make `import tvm` work on a lent GPU machine (Python 3.12 with torch,
# no TVM) from the files experiments/gpu_bundle.sh packed into .gpu1/-.gpu3/ (see experiments/results/README.md, "On a real GPU"):
# each part is found in /root/parts (where the first calls copied theirs) or in a carried .gpuN/.
# Sets PYTHONPATH; unpacks once per machine into /tmp/site.
if ! python3 -c "import tvm" 2>/dev/null; then
  SITE=/tmp/site
  if [ ! -f "$SITE/tvm/lib/libtvm_compiler.so" ] || [ ! -d "$SITE/xgboost" ]; then
    mkdir -p "$SITE"
    found() { ls /root/parts/"$1" .gpu[1-3]/"$1" 2>/dev/null | head -1; }
    parts=""
    for p in aa ab ac; do  # libtvm_compiler.so, xz-compressed and split in three (one per call)
      f=$(found "c.part.$p") && [ -n "$f" ] || { echo "c.part.$p missing: carry .gpu1-.gpu3 (experiments/results/README.md, \"On a real GPU\")"; exit 3; }
      parts="$parts $f"
    done
    echo "unpacking:$parts"
    cat $parts | xz -d | tar -C "$SITE" -xf - || { echo "libtvm_compiler parts broken"; exit 3; }
    rest=$(found rest.tar.xz) && [ -n "$rest" ] || { echo "rest.tar.xz missing: carry .gpu3"; exit 3; }
    xz -d < "$rest" | tar -C "$SITE" -xf - || exit 3
  fi
  export PYTHONPATH="$SITE:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export PYTHONUNBUFFERED=1
command -v nvcc >/dev/null && export TVM_CUDA_COMPILE_MODE=nvcc

describe_gpu() {  # the device as TVM sees it, and the blueprint it resolves to
  echo "== device"
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv
  python3 -c '
import tvm
from chameleon.hardware.targets import resolve_target
from chameleon.hardware.target_blueprint import blueprint_for_target
d = tvm.cuda(0)
print("tvm.cuda(0):", d.exist, d.device_name, d.compute_version, "SMs", d.multi_processor_count,
      "L2", d.l2_cache_size_bytes, "smem/block", d.max_shared_memory_per_block)
spec = resolve_target("cuda")
print("target:", spec.target_json)
print("blueprint:", blueprint_for_target(spec.target_json).name)
'
}

tune_and_replay() {  # $1: seconds of tuning, $2: seconds for replay; the log and replay.json go to $OUT
  echo "== tune ResNet-18 on this GPU (${1}s), then replay"
  timeout -s INT "$1" python3 -m chameleon tune --model resnet18 --target cuda --trials 400 \
    --log-dir tuning_logs/resnet18/cuda
  echo "tune exit $?"
  timeout -s INT "$2" python3 -m chameleon replay tuning_logs/resnet18/cuda --json > "$OUT/replay.json"
  echo "replay exit $?"
  cat "$OUT/replay.json"
  tar -czf "$OUT/log-cuda.tar.gz" -C tuning_logs/resnet18 cuda
}
