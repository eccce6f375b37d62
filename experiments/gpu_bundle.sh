#!/usr/bin/env bash
# Pack TVM and the other packages a lent GPU machine lacks into .gpu1/, .gpu2/ and .gpu3/ (git-ignored).
#
# That machine has Python 3.12 with torch, scikit-learn, typer, rich, matplotlib, but no TVM,
# tvm-ffi, xgboost or tornado, and reaches no package index. A call carries at most 64 MiB with
# the repository (~33 MB), and TVM's libtvm_compiler.so alone is 59 MB even under xz -9. So it
# travels in three calls, each within the 30 s the machine stays warm after the one before: the
# first two carry .gpu1/ and .gpu2/ and copy them to /root/parts, the third carries .gpu3/ (the
# last part and everything else) and runs experiments/gpu_check.sh or gpu_transfer.sh, which
# unpack them all (gpu_env.sh). Takes ~5 minutes here (xz -9 on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux2014_x86_64 \
  -d "$work/whl" apache-tvm==0.27.0.post1 apache-tvm-ffi==0.1.14.post1 xgboost-cpu==3.2.0 tornado==6.5.2
mkdir -p "$work/site"
for w in "$work"/whl/*.whl; do unzip -q -o "$w" -d "$work/site"; done
rm -rf "$work/site/tvm/3rdparty/cutlass"  # headers for CUTLASS offload, unused by tuning
# gpu_check.sh unpacks the parts into its site folder: the archive keeps the path tvm/lib/
mkdir -p "$work/pack/tvm/lib" && mv "$work/site/tvm/lib/libtvm_compiler.so" "$work/pack/tvm/lib/"
rm -rf .gpu1 .gpu2 .gpu3 && mkdir -p .gpu1 .gpu2 .gpu3
tar -C "$work/pack" -cf - tvm/lib/libtvm_compiler.so | xz -T0 -9 > "$work/c.tar.xz"
split -b 22000000 "$work/c.tar.xz" "$work/c.part."
mv "$work/c.part.aa" .gpu1/ && mv "$work/c.part.ab" .gpu2/ && mv "$work/c.part.ac" .gpu3/
tar -C "$work/site" -cf - . | xz -T0 -9 > .gpu3/rest.tar.xz
for d in .gpu1 .gpu2 .gpu3; do grep -qx "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >> .git/info/exclude; done
du -sh .gpu1 .gpu2 .gpu3
