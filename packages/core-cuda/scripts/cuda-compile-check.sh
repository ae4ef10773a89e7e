#!/usr/bin/env bash
# Compiles .cu files alone, with the addon's flags, into a scratch folder: a quick check of CUDA code
# on a machine without a GPU (the addon build compiles them all anyway). Usage: cuda-compile-check.sh FILE.cu...
# KEXUE_CUDA_ARCH (default "80;90") picks the architectures, as for the build.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
addon_api="$(cd "$here" && node -p "require('node-addon-api').include_dir")"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
gencode=()
IFS=';' read -ra archs <<<"${KEXUE_CUDA_ARCH:-80;90}"
for a in "${archs[@]}"; do gencode+=("--generate-code=arch=compute_${a},code=[compute_${a},sm_${a}]"); done
for f in "$@"; do
  nvcc -std=c++17 -O3 --expt-relaxed-constexpr "${gencode[@]}" -Xcompiler=-fPIC \
    -DKX_WITH_CUDA=1 -DKX_CUDA_ARCHS='"80,90"' -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS \
    -I"$here/native/include" -I"$here/native" -I"$addon_api" -c "$f" -o "$out/$(basename "$f").o"
  echo "ok $f"
done
