#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on the lent GPU machine and that its image lacks (it has
# nvcc, CMake, g++ and PyTorch, but no Node.js, no oneDNN, Highway or OpenBLAS and no network) into .gpu-carry/,
# an ignored folder that the device call names in `carry`:
#   node.xz             this machine's Node binary, stripped of its debug symbols (official builds
#                       link only glibc and libstdc++)
#   node_modules.tar.xz the workspace's node_modules (pnpm's symlinked layout, TypeScript left out:
#                       vitest, vite, tsx, cmake-js, node-addon-api, node-api-headers, ...)
#   native-deps.tar.xz  native/{include,lib}: oneDNN's and Highway's headers and libraries (with the
#                       .so links the linker wants) and libOpenCL.so.1, which libdnnl loads;
#                       OpenBLAS's library (kx.linalg's LAPACK) with its libgfortran and libquadmath;
#                       native/gomp/{include,lib}: omp.h and libgomp, used only where g++ lacks them
# Run it here, from anywhere in the repository, after `pnpm install`. The device tool carries at most
# 64 MiB in all, the working tree (tracked and untracked-not-ignored files) included, so the script
# fails when the pack exceeds what the tree leaves (less 1 MiB), or KEXUE_CARRY_LIMIT_MB if set.
# Output: .gpu-carry/{node.xz,node_modules.tar.xz,native-deps.tar.xz,node-version.txt}.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.gpu-carry
tree_kb=$({ git ls-files -z; git ls-files -z --others --exclude-standard; } | du -ck --files0-from=- 2>/dev/null | tail -1 | cut -f1)
limit_mb="${KEXUE_CARRY_LIMIT_MB:-$(((64 * 1024 - tree_kb) / 1024 - 1))}"
mkdir -p "$dest"

# The Node binary changes rarely and takes longest to compress: kept when already packed.
node_bin="$(command -v node)"
if [ ! -s "$dest/node.xz" ] || [ "$node_bin" -nt "$dest/node.xz" ]; then
  strip -o "$dest/node.part" "$node_bin"  # its debug symbols: 2 MB of the packed size
  xz -T0 --x86 --lzma2=preset=9e -c "$dest/node.part" >"$dest/node.xz.part"  # the x86 filter: 0.8 MB less
  rm "$dest/node.part"
  mv "$dest/node.xz.part" "$dest/node.xz"
fi

# Every node_modules folder of the workspace, with pnpm's relative links kept as links. Left out,
# for size: TypeScript, type declarations, source maps and Markdown (never loaded to run),
# lightningcss (vite loads it only to process CSS), onnxruntime-node (bench's CPU comparison, not
# the GPU check's) and node_modules/.cache (build outputs and the bench's generated models, remade
# on demand).
module_dirs=()
for d in node_modules packages/*/node_modules bench/node_modules; do [ -d "$d" ] && module_dirs+=("$d"); done
tar -cf - --exclude='node_modules/.pnpm/typescript@*' --exclude='node_modules/typescript' \
  --exclude='node_modules/.pnpm/@types+*' --exclude='node_modules/@types' \
  --exclude='node_modules/.pnpm/lightningcss*' --exclude='node_modules/.pnpm/onnxruntime-node@*' \
  --exclude='node_modules/.cache' --exclude='*.d.ts' --exclude='*.d.cts' --exclude='*.d.mts' --exclude='*.map' --exclude='*.md' \
  --exclude='node_modules/.bin/tsc' --exclude='node_modules/.bin/tsserver' "${module_dirs[@]}" | xz -T0 -9 >"$dest/node_modules.tar.xz"

# The addon's native libraries, staged as native/{include,lib} (the build's CMAKE_PREFIX_PATH there):
# oneDNN and Highway (headers from their -dev packages, libraries as the dynamic loader finds them)
# and whatever they load that the GPU image lacks; native/gomp holds a fallback libgomp and omp.h.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
nat="$stage/native"
mkdir -p "$nat/include" "$nat/lib" "$nat/gomp/include" "$nat/gomp/lib"
die() { echo "gpu-pack: $*" >&2; exit 1; }

# headers PKG: the package's files under /usr/include, copied with their relative paths
headers() {
  local list f
  list="$(dpkg -L "$1" 2>/dev/null)" || die "package $1 is not installed (apt-get install $1)"
  while read -r f; do
    if [ -f "$f" ]; then mkdir -p "$nat/include/$(dirname "${f#/usr/include/}")"; cp -L "$f" "$nat/include/${f#/usr/include/}"; fi
  done < <(grep '^/usr/include/' <<<"$list")
}
headers libdnnl-dev
headers libhwy-dev
[ -f "$nat/include/dnnl.hpp" ] || die "dnnl.hpp not in libdnnl-dev's file list (apt-get install libdnnl-dev)"
[ -f "$nat/include/hwy/highway.h" ] || die "hwy/highway.h not in libhwy-dev's file list (apt-get install libhwy-dev)"

# soname_path SONAME: the x86-64 library the dynamic loader would load (no early exit: pipefail)
soname_path() { ldconfig -p | awk -v n="$1" '$1 == n && /x86-64/ && !found {print $NF; found = 1}'; }

# What every machine with g++ has (glibc, the C++ runtime), never carried; libgomp is g++'s too but
# gets the fallback copy below.
base='^(linux-vdso|ld-linux-x86-64|libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|libgomp)\.so'
# The three libraries the build links (each with the unversioned name the linker looks for), then,
# breadth first, every library they load outside that base.
queue=()
for pair in libdnnl.so.2:libdnnl-dev libhwy.so.1:libhwy-dev libopenblas.so.0:libopenblas-dev; do
  soname=${pair%%:*} pkg=${pair#*:}
  path="$(soname_path "$soname")"
  [ -n "$path" ] || die "$soname not found by ldconfig (apt-get install $pkg)"
  cp -L "$path" "$nat/lib/$soname"
  ln -s "$soname" "$nat/lib/${soname%.so.*}.so"
  queue+=("$nat/lib/$soname")
done
while [ ${#queue[@]} -gt 0 ]; do
  lib=${queue[0]}
  queue=("${queue[@]:1}")
  while read -r name arrow path _; do
    [ "$arrow" = "=>" ] || continue
    [[ "$name" =~ $base ]] && continue
    [ -e "$nat/lib/$name" ] && continue
    # libdnnl's libOpenCL.so.1 (ocl-icd-libopencl1) is the one expected here
    [ "$path" != "not" ] || die "$name, needed by $(basename "$lib"), not found (libOpenCL.so.1: apt-get install ocl-icd-libopencl1)"
    cp -L "$path" "$nat/lib/$name"
    queue+=("$nat/lib/$name")
  done < <(ldd "$lib")
done

# libgomp: part of g++ on the usual images (Debian/Ubuntu's libgcc-N-dev ships omp.h and depends on
# libgomp1; RHEL's gcc requires libgomp), so gpu-check.sh uses this copy only when its g++ lacks it.
gomp="$(soname_path libgomp.so.1)"
[ -n "$gomp" ] || die "libgomp.so.1 not found by ldconfig (apt-get install libgomp1)"
cp -L "$gomp" "$nat/gomp/lib/libgomp.so.1"
ln -s libgomp.so.1 "$nat/gomp/lib/libgomp.so"
omp_h="$(g++ -print-file-name=include/omp.h)"
[ -f "$omp_h" ] || die "omp.h not found by g++ (apt-get install g++)"
cp -L "$omp_h" "$nat/gomp/include/omp.h"

# Self-check: with only the staged folder on the path, each staged library's dependencies resolve
# either to the base or into the stage.
for lib in "$nat"/lib/*.so.* "$nat"/gomp/lib/*.so.*; do
  if LD_LIBRARY_PATH="$nat/lib:$nat/gomp/lib" ldd "$lib" | S="$stage" B="$base" awk \
    '$2 == "=>" && ($3 == "not" || ($1 !~ ENVIRON["B"] && index($3, ENVIRON["S"]) != 1)) {print; bad = 1} END {exit !bad}'; then
    die "$(basename "$lib") has a dependency outside the stage (above)"
  fi
done
(cd "$stage" && find native -type f -name '*.so*' -exec ls -l {} + | awk '{print "  " $5, $NF}')
# xz's x86 filter: libdnnl (40 MB) packs to 6.0 MB instead of 6.9
tar -C "$stage" -cf - native | xz -T0 --x86 --lzma2=preset=9e >"$dest/native-deps.tar.xz"
rm -f "$dest/openblas.tar.xz"  # the OpenBLAS pack of earlier versions, no longer used

node --version >"$dest/node-version.txt"
total_kb=$(du -sk "$dest" | cut -f1)
ls -l "$dest"
echo "gpu-pack: $dest holds $((total_kb / 1024)) MiB (limit ${limit_mb} MiB: 64 less the working tree's $((tree_kb / 1024)) MiB, less 1)"
if [ "$total_kb" -gt $((limit_mb * 1024)) ]; then
  echo "gpu-pack: too big for the device tool's carry" >&2
  exit 1
fi
