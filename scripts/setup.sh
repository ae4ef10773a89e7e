#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks for kexue, then the workspace and the native addon.
# Idempotent: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
# chromium: the report page's rendering test (headless)
# libhwy-dev: Google Highway, the CPU vector runs and their dispatch (native/cpu/simd/)
# libdnnl-dev: oneDNN, the CPU's matrix products (native/cpu/onednn.h, ops/matmul/)
# libopenblas-dev: LAPACK for kx.linalg (ops/linalg/), and the bench's peaks program (OpenBLAS is
# what PyTorch multiplies with here)
# libxbyak-dev: Xbyak (header-only), the x86-64 emitter of kx.compile's fused groups
# (ops/fused_group/emitter.cpp); without it every fused group runs in the block interpreter
# dataset-fashion-mnist: Fashion-MNIST's IDX files in /usr/share/datasets/fashion-mnist, the data of
# `kexue train vae` (ALGORITHMS.md §5.3)
# openmpi-bin, libopenmpi-dev: Open MPI for data-parallel training (kx.dist opens libmpi at run
# time; the addon builds without it), mpirun for its tests, mpicc for bench/allreduce.c
for pkg in libopenblas-dev libhwy-dev libdnnl-dev libxbyak-dev cmake g++ make chromium dataset-fashion-mnist openmpi-bin libopenmpi-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version)" != "12.4.2" ]; then
  echo "setup: installing pnpm 12.4.2"
  npm install -g pnpm@12.4.2 >/dev/null
fi

# CUDA kernels are compiled only where they can run (nvidia-smi sees a GPU) or when KEXUE_CUDA=1 asks
# for them (CI sets it, so that they keep compiling): a CPU-only build takes minutes less.
if [ "${KEXUE_CUDA:-}" != 1 ] && ! { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; }; then
  echo "setup: no GPU here: building the addon without CUDA kernels (KEXUE_CUDA=1 compiles them)"
  export KEXUE_NO_CUDA=1
fi

pnpm install --frozen-lockfile
# A workspace package's failed install script is not retried by pnpm: build the addon explicitly.
pnpm -F @kexue/core-cuda run build:native
