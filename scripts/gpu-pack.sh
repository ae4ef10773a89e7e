#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on the lent GPU machine and that its image lacks (it has
# nvcc, CMake, g++ and PyTorch, but no Node.js, no OpenBLAS and no network) into .gpu-carry/, an
# ignored folder that the device call names in `carry`:
#   node.xz             this machine's Node binary (official builds link only glibc and libstdc++)
#   node_modules.tar.xz the workspace's node_modules (pnpm's symlinked layout, TypeScript left out:
#                       vitest, vite, tsx, cmake-js, node-addon-api, node-api-headers, ...)
#   openblas.tar.xz     libopenblas with its libgfortran/libquadmath, and cblas.h for the build
# Run it here, from anywhere in the repository, after `pnpm install`. The device tool carries at most
# 64 MiB (working tree included), so the script fails when the pack exceeds KEXUE_CARRY_LIMIT_MB
# (default 46, leaving room for a ~16 MiB tree).
# Output: .gpu-carry/{node.xz,node_modules.tar.xz,openblas.tar.xz,node-version.txt}.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.gpu-carry
limit_mb="${KEXUE_CARRY_LIMIT_MB:-46}"
mkdir -p "$dest"

# The Node binary changes rarely and takes longest to compress: kept when already packed.
node_bin="$(command -v node)"
if [ ! -s "$dest/node.xz" ] || [ "$node_bin" -nt "$dest/node.xz" ]; then
  xz -T0 -9 -c "$node_bin" >"$dest/node.xz.part"
  mv "$dest/node.xz.part" "$dest/node.xz"
fi

# Every node_modules folder of the workspace, with pnpm's relative links kept as links. Left out,
# for size: TypeScript and type declarations (never loaded to run), and lightningcss (vite loads
# it only to process CSS).
module_dirs=()
for d in node_modules packages/*/node_modules bench/node_modules; do [ -d "$d" ] && module_dirs+=("$d"); done
tar -cf - --exclude='node_modules/.pnpm/typescript@*' --exclude='node_modules/typescript' \
  --exclude='node_modules/.pnpm/@types+*' --exclude='node_modules/@types' \
  --exclude='node_modules/.pnpm/lightningcss*' \
  --exclude='node_modules/.bin/tsc' --exclude='node_modules/.bin/tsserver' "${module_dirs[@]}" | xz -T0 -9 >"$dest/node_modules.tar.xz"

# OpenBLAS: the library the addon links (found as the build finds it) and its runtime dependencies.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/openblas/lib" "$stage/openblas/include"
blas="$(ldconfig -p | awk '/libopenblas\.so\.0 .*x86-64/ && !found {print $NF; found = 1}')"
[ -n "$blas" ] || { echo "gpu-pack: libopenblas.so.0 not found (apt-get install libopenblas-dev)" >&2; exit 1; }
cp -L "$blas" "$stage/openblas/lib/libopenblas.so.0"
ln -s libopenblas.so.0 "$stage/openblas/lib/libopenblas.so"
for dep in $(ldd "$blas" | awk '/libgfortran|libquadmath/ {print $3}'); do cp -L "$dep" "$stage/openblas/lib/"; done
for h in cblas.h openblas_config.h; do
  found=""
  for dir in /usr/include/x86_64-linux-gnu /usr/include/openblas /usr/include; do
    if [ -f "$dir/$h" ]; then found="$dir/$h"; break; fi
  done
  [ -n "$found" ] || { echo "gpu-pack: $h not found (apt-get install libopenblas-dev)" >&2; exit 1; }
  cp -L "$found" "$stage/openblas/include/$h"
done
tar -C "$stage" -cf - openblas | xz -T0 -6 >"$dest/openblas.tar.xz"

node --version >"$dest/node-version.txt"
total_kb=$(du -sk "$dest" | cut -f1)
ls -l "$dest"
echo "gpu-pack: $dest holds $((total_kb / 1024)) MiB (limit ${limit_mb} MiB)"
if [ "$total_kb" -gt $((limit_mb * 1024)) ]; then
  echo "gpu-pack: too big for the device tool's carry" >&2
  exit 1
fi
