#!/usr/bin/env bash
# The device check, run in one call on a GPU machine (see docs/DESIGN.md, "CUDA in this build"):
# builds with CUDA for the local GPU's architecture, runs the test suite (the CUDA-only tests run
# there), and writes a JSON report to ${OUT:-.}/gpu-report.json. Keep it well under 10 minutes.
# The lent H200 image has nvcc, CMake and PyTorch but (as documented) no Node.js, OpenBLAS or
# network: a run there must carry a compressed node binary, node_modules and libopenblas, or use
# the standalone dev/kernels programs, which need only nvcc. Not yet run on a GPU.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}"
started=$(date +%s)
nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader >"$out/gpu.txt" 2>&1
export KEXUE_CUDA_ARCH="${KEXUE_CUDA_ARCH:-90}"
build_ok=true
{ bash scripts/setup.sh; } >"$out/build.log" 2>&1 || build_ok=false
tests_line="not run"
if $build_ok; then
  pnpm exec vitest run >"$out/tests.log" 2>&1
  tests_line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out/tests.log" | tail -n 1)
fi
# The report: what the build and the machine say, and the test line.
GPU_TXT="$(cat "$out/gpu.txt" 2>/dev/null)" BUILD_OK=$build_ok TESTS="$tests_line" SECONDS_TAKEN=$(( $(date +%s) - started )) OUT_FILE="$out/gpu-report.json" \
node --conditions=source --import tsx --input-type=module -e "
  let devices = null, build = null;
  try {
    const kx = await import('@kexue/core-cuda');
    devices = kx.devices();
    build = { ...kx.buildInfo(), ops: undefined };
  } catch (err) { devices = String(err); }
  const report = { gpu: process.env.GPU_TXT, buildOk: process.env.BUILD_OK === 'true', tests: process.env.TESTS,
                   seconds: Number(process.env.SECONDS_TAKEN), devices, build };
  (await import('node:fs')).writeFileSync(process.env.OUT_FILE, JSON.stringify(report, null, 2));
  console.log(JSON.stringify(report, null, 2));
"
