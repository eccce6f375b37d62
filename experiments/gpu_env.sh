# Sourced by the GPU scripts: make `import tvm` work on a lent GPU machine (Python 3.12 with torch,
# no TVM) from the files experiments/gpu_bundle.sh packed into .gpu1/ and .gpu2/ (see README "GPU").
# Sets PYTHONPATH; unpacks once per machine into /tmp/site.
if ! python3 -c "import tvm" 2>/dev/null; then
  SITE=/tmp/site
  if [ ! -f "$SITE/tvm/lib/libtvm_compiler.so" ] || [ ! -d "$SITE/xgboost" ]; then
    mkdir -p "$SITE"
    parts=""
    for p in aa ab; do  # libtvm_compiler.so, xz-compressed and split in two (one per call)
      parts="$parts $(ls /root/parts/c.part.$p .gpu1/c.part.$p .gpu2/c.part.$p 2>/dev/null | head -1)"
    done
    echo "unpacking:$parts"
    cat $parts | xz -d | tar -C "$SITE" -xf - || { echo "libtvm_compiler parts missing or broken"; exit 3; }
    xz -d < .gpu2/rest.tar.xz | tar -C "$SITE" -xf - || exit 3
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
