#!/usr/bin/env bash
# The GPU check: the one script run on the lent GPU machine (docs/DESIGN.md, "CUDA runtime"). First,
# here: `bash scripts/gpu-pack.sh` (Node, node_modules and the addon's native libraries, oneDNN,
# Highway and OpenBLAS, into the ignored .gpu-carry/).
# Then one device call from the repository root:
#   run(command: "bash scripts/gpu-check.sh", carry: [".gpu-carry"], timeout_s: 540)
# Stages, each under its own timeout and all within KEXUE_GPU_BUDGET_S (default 470 s, the issue's
# 8 minutes less a margin), in order of importance should the budget run out: gpu (nvidia-smi),
# unpack (.gpu-carry), build (the addon with KEXUE_CUDA_ARCH=90), info (the devices and where
# cuBLASLt was found), tests (cuda_runtime, cuda_parity and every *.cuda.test.ts), bench
# (bench/src/gpu_e2e.ts: the BERT-base bf16/fp16 training step beside PyTorch; it saves its report
# after each row), lab (each packages/core-cuda/dev/kernels/*.cu program, built with nvcc and run),
# fallback (the matmul parity cases and the model suites again with cuBLASLt off: our own GEMM). A
# stage whose prerequisite failed is skipped with the reason, so on a machine without a GPU or
# without the pack the script still ends at once with a report saying so.
# Writes ${OUT:-./gpu-out}/gpu-report.json (and gpu-logs.tar.xz with every stage's log).
set -uo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
out="${OUT:-$root/gpu-out}"
work="${KEXUE_GPU_WORK:-/tmp/kexue-gpu}"
budget="${KEXUE_GPU_BUDGET_S:-470}"
started=$(date +%s)
rm -rf "$work"
mkdir -p "$out" "$work/logs" "$work/bin" "$work/lab"
: >"$work/stages.tsv"

export PATH="$work/bin:/usr/local/cuda/bin:$PATH"
# The carried oneDNN/Highway (native-deps.tar.xz, unpacked to $work/native): CMake's find_path and
# find_library look under CMAKE_PREFIX_PATH's include/ and lib/ before the system's folders, and the
# dynamic loader needs the folder for libdnnl's own libOpenCL.so.1 (a RUNPATH covers only the addon).
native="$work/native"
export CMAKE_PREFIX_PATH="$native${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export LD_LIBRARY_PATH="$native/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# libgomp and omp.h come with g++ (libgcc-N-dev, libgomp1), matched to it; the carried copies only
# where this g++ lacks them.
if ! printf '#include <omp.h>\n' | g++ -x c++ -fsyntax-only - 2>/dev/null || ! ldconfig -p 2>/dev/null | grep -q 'libgomp\.so\.1 '; then
  export CMAKE_PREFIX_PATH="$native/gomp:$CMAKE_PREFIX_PATH" LD_LIBRARY_PATH="$native/gomp/lib:$LD_LIBRARY_PATH"
  export CPATH="$native/gomp/include${CPATH:+:$CPATH}"
fi
export KEXUE_CUDA_ARCH="${KEXUE_CUDA_ARCH:-90}"
export CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)"
export NO_COLOR=1 FORCE_COLOR=0  # plain logs: the report reads them with regular expressions
export root work

# stage NAME LIMIT_S FUNCTION: runs the exported shell function under a timeout (cut to what is left
# of the budget), logs to $work/logs/NAME.log, records "NAME rc seconds" (rc 124: timed out).
stage() {
  local name=$1 limit=$2 fn=$3 left t0 rc
  left=$((budget - ($(date +%s) - started)))
  ((limit > left)) && limit=$left
  if ((limit < 5)); then
    printf '%s\tbudget\t0\n' "$name" >>"$work/stages.tsv"
    return 124
  fi
  t0=$(date +%s)
  timeout -k 5 "$limit" bash -c "$fn" >"$work/logs/$name.log" 2>&1
  rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(($(date +%s) - t0))" >>"$work/stages.tsv"
  return $rc
}
skip() { printf '%s\tskipped: %s\t0\n' "$1" "$2" >>"$work/stages.tsv"; }

gpu_stage() {
  nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader
}

unpack_stage() {
  set -e
  xz -dc .gpu-carry/node.xz >"$work/bin/node"
  chmod +x "$work/bin/node"
  tar -xJf .gpu-carry/node_modules.tar.xz -C "$root"
  tar -xJf .gpu-carry/native-deps.tar.xz -C "$work"
  node --version
}

build_stage() {
  set -e
  cd "$root/packages/core-cuda"
  nvcc --version | tail -n 2
  echo "CMAKE_PREFIX_PATH=$CMAKE_PREFIX_PATH${CPATH:+ CPATH=$CPATH}"
  node node_modules/cmake-js/bin/cmake-js compile --out build
  grep -E '^KX_(DNNL|GOMP|HWY)' build/CMakeCache.txt || true
  # Every library the addon loads must resolve (the carried ones need glibc >= 2.34): a failure
  # here, in the build's log, says which instead of a failed require() in every test.
  ldd build/Release/kexue_core.node 2>&1 | tee "$work/ldd.txt"
  if grep -q 'not found' "$work/ldd.txt"; then echo "the addon's libraries do not all load (above)"; exit 1; fi
}

# cuBLASLt: the addon's loader tries the dynamic loader's path and the usual folders; the image's
# PyTorch keeps its copy in a virtual environment's site-packages, so name the first one found.
find_cublaslt() {
  local dirs f
  ldconfig -p 2>/dev/null | grep -qE 'libcublasLt\.so\.1[23] ' && return 0
  dirs=$(python3 -c 'import site; print(" ".join(p + "/nvidia" for p in site.getsitepackages()))' 2>/dev/null)
  f=$(find /usr/local/cuda/lib64 /usr/local/cuda/targets $dirs -name 'libcublasLt.so.1[23]' 2>/dev/null | head -n 1)
  if [ -n "$f" ]; then export KEXUE_CUBLASLT="$f"; fi
}

# NCCL for kx.dist's CUDA path (packages/core-cuda/test/dist.cuda.test.ts, in the tests stage: one
# process, no MPI): opened at run time like cuBLASLt; PyTorch's copy lives in site-packages/nvidia/nccl.
find_nccl() {
  local dirs f
  ldconfig -p 2>/dev/null | grep -q 'libnccl\.so\.2 ' && return 0
  dirs=$(python3 -c 'import site; print(" ".join(p + "/nvidia" for p in site.getsitepackages()))' 2>/dev/null)
  f=$(find /usr/local/cuda/lib64 /usr/lib/x86_64-linux-gnu $dirs -name 'libnccl.so.2' 2>/dev/null | head -n 1)
  if [ -n "$f" ]; then export KEXUE_NCCL_LIBRARY="$f"; fi
}

# What the addon found: the GPU, the build's architectures and the matrix-product library.
info_stage() {
  node --conditions=source --import tsx --input-type=module -e "
    import * as kx from './packages/core-cuda/src/index.ts';
    const b = kx.buildInfo();
    console.log(JSON.stringify({ cudaArchs: b.cudaArchs, cudaRuntimeVersion: b.cudaRuntimeVersion, cublasLt: b.cublasLt,
      devices: kx.cuda.isAvailable() ? kx.devices() : kx.cuda.unavailableReason() }));"
}

tests_stage() {
  local files
  files=$(find packages -name '*.cuda.test.ts' -not -path '*/node_modules/*' | sort)
  node node_modules/vitest/vitest.mjs run packages/core-cuda/test/cuda_runtime.test.ts \
    packages/core-cuda/test/cuda_parity.test.ts $files --reporter=verbose \
    --reporter=./tools/vitest-summary-reporter.ts --reporter=json --outputFile.json="$work/vitest.json"
}

# Kernel lab programs (packages/core-cuda/dev/kernels/*.cu): standalone programs that validate
# against a CPU reference and print timings, built from packages/core-cuda. A line "// nvcc: ARGS"
# in a file adds ARGS to its build (more sources, libraries: "// nvcc: native/cuda/cublaslt.cu -ldl").
lab_stage() {
  local f name flags
  cd "$root/packages/core-cuda" || return 1
  # built side by side (each nvcc is one core's work for tens of seconds), then run one at a time
  for f in $(ls dev/kernels/*.cu 2>/dev/null); do
    name=$(basename "$f" .cu)
    flags=$(sed -n 's|^// nvcc: ||p' "$f" | head -n 1)
    (nvcc -O3 -std=c++17 --expt-relaxed-constexpr -arch=sm_90 -Inative/include -Inative \
      -o "$work/lab/$name" "$f" $flags >"$work/lab/$name.build" 2>&1 || rm -f "$work/lab/$name") &
  done
  wait
  for f in $(ls dev/kernels/*.cu 2>/dev/null); do
    name=$(basename "$f" .cu)
    echo "== $name"
    if [ -x "$work/lab/$name" ]; then
      timeout 60 "$work/lab/$name" >"$work/lab/$name.out" 2>&1
      echo "rc $?"
    else
      echo "build failed"
      cat "$work/lab/$name.build"
    fi
  done
}

# The matrix products again with cuBLASLt turned off: our own GEMM kernels, on their own and inside
# the model parity suites.
fallback_stage() {
  KEXUE_CUBLASLT=off node node_modules/vitest/vitest.mjs run packages/core-cuda/test/cuda_parity.test.ts \
    packages/models/test/bert.cuda.test.ts -t 'matmul|BERT|RoFormer' --reporter=verbose \
    --reporter=./tools/vitest-summary-reporter.ts
}

bench_stage() {
  node --conditions=source --import tsx bench/src/gpu_e2e.ts --out "$work/bench.json"
}
export -f gpu_stage unpack_stage build_stage info_stage tests_stage fallback_stage lab_stage bench_stage

gpu_ok=false unpack_ok=false build_ok=false
stage gpu 30 gpu_stage && [ -s "$work/logs/gpu.log" ] && gpu_ok=true
# The pack replaces the checkout's node_modules, so it is unpacked only where the checks will run.
if ! $gpu_ok; then
  skip unpack "no GPU answered nvidia-smi"
elif [ ! -f .gpu-carry/node.xz ]; then
  skip unpack "no .gpu-carry/ (run scripts/gpu-pack.sh here and carry .gpu-carry)"
elif stage unpack 60 unpack_stage; then
  unpack_ok=true
fi
if ! $gpu_ok; then
  skip build "no GPU answered nvidia-smi"
elif ! $unpack_ok; then
  skip build "nothing unpacked"
elif stage build 200 build_stage; then
  build_ok=true
fi
$gpu_ok && find_cublaslt
$gpu_ok && find_nccl
# In order of what matters most should the budget run out: correctness, the end-to-end step against
# PyTorch, the kernel lab, our GEMM without cuBLASLt.
if $build_ok; then
  stage info 30 info_stage
  stage tests 150 tests_stage
  stage bench 150 bench_stage
else
  for s in info tests bench; do skip $s "the addon was not built"; done
fi
# The lab programs need only nvcc and the GPU, not the addon.
if $gpu_ok; then stage lab 90 lab_stage; else skip lab "no GPU answered nvidia-smi"; fi
if $build_ok; then stage fallback 60 fallback_stage; else skip fallback "the addon was not built"; fi

# The report, assembled by python3 (on the GPU image and here) from what the stages left.
SECONDS_TAKEN=$(($(date +%s) - started)) python3 - "$work" "$out/gpu-report.json" <<'PY'
import json, os, re, sys
work, dest = sys.argv[1], sys.argv[2]

def text(path, limit=200_000):
    try:
        with open(path, errors="replace") as f:
            return re.sub(r"\x1b\[[0-9;]*m", "", f.read())[-limit:]  # colour codes out, should any remain
    except OSError:
        return ""

stages = {}
for line in text(os.path.join(work, "stages.tsv")).splitlines():
    name, rc, secs = line.split("\t")
    # timeout exits 124, or 137 when its -k had to kill
    stages[name] = {"status": "ok" if rc == "0" else ("timed out" if rc in ("124", "137") else rc if rc.startswith("skipped") or rc == "budget" else f"failed (rc {rc})"), "seconds": int(secs)}

def status(name):
    return stages.get(name, {}).get("status", "not run")

gpu_log = text(os.path.join(work, "logs", "gpu.log")).strip()
report = {
    "gpu": gpu_log if status("gpu") == "ok" and gpu_log else None,
    "noGpuReason": None if status("gpu") == "ok" and gpu_log else (gpu_log or status("gpu")),
    "stages": stages,
    "buildOk": status("build") == "ok",
    "buildLogTail": text(os.path.join(work, "logs", "build.log"), 3000) if status("build").startswith(("failed", "timed")) else None,
    "seconds": int(os.environ["SECONDS_TAKEN"]),
}

try:
    report["addon"] = json.loads(text(os.path.join(work, "logs", "info.log")).strip().splitlines()[-1])
except (IndexError, ValueError):
    report["addon"] = status("info")
fallback = re.findall(r"^\s*(\d+ passed, \d+ failed.*)$", text(os.path.join(work, "logs", "fallback.log")), re.M)
report["ourGemmTests"] = fallback[-1] if fallback else status("fallback")

log = text(os.path.join(work, "logs", "tests.log"))
summary = re.findall(r"^\s*(\d+ passed, \d+ failed.*)$", log, re.M)
tests = {"summary": summary[-1] if summary else None,
         "notes": sorted(set(re.findall(r"^(?:ops without a CUDA kernel.*|.*skipped: .*)$", log, re.M)))[:20]}
try:
    with open(os.path.join(work, "vitest.json")) as f:
        v = json.load(f)
    tests.update(passed=v.get("numPassedTests"), failed=v.get("numFailedTests"), skipped=v.get("numPendingTests"))
    failures = []
    for file in v.get("testResults", []):
        for t in file.get("assertionResults", []):
            if t.get("status") == "failed":
                msg = " ".join(t.get("failureMessages", [""])[:1])[:400]
                failures.append(f"{t.get('fullName')}: {msg}")
        if file.get("status") == "failed" and not file.get("assertionResults"):
            failures.append(f"{file.get('name')}: {file.get('message', '')[:400]}")
    tests["failures"] = failures[:60]
except (OSError, ValueError):
    pass
report["tests"] = tests

lab = {}
lab_dir = os.path.join(work, "lab")
for name in sorted(os.listdir(lab_dir)) if os.path.isdir(lab_dir) else []:
    if name.endswith(".out"):
        lab[name[:-4]] = text(os.path.join(lab_dir, name), 8000).splitlines()[-60:]
    elif name.endswith(".build") and not os.path.exists(os.path.join(lab_dir, name[:-6] + ".out")):
        lab[name[:-6]] = ["build failed"] + text(os.path.join(lab_dir, name), 2000).splitlines()[-20:]
results = []
for name, lines in lab.items() if isinstance(lab, dict) else []:
    for line in lines:
        if line.startswith("RESULT "):
            try:
                results.append({"program": name, **json.loads(line[7:])})
            except ValueError:
                pass
report["kernelLabResults"] = results
report["kernelLab"] = lab or ("no dev/kernels/*.cu programs" if status("lab") == "ok" else status("lab"))

try:
    with open(os.path.join(work, "bench.json")) as f:
        report["bench"] = json.load(f)
except (OSError, ValueError):
    report["bench"] = status("bench")

with open(dest, "w") as f:
    json.dump(report, f, indent=2)
print(json.dumps(report, indent=2)[:6000])
PY
tar -C "$work" -cJf "$out/gpu-logs.tar.xz" logs stages.tsv $(cd "$work" && ls lab/*.out lab/*.build 2>/dev/null) 2>/dev/null
echo "gpu-check: report in $out/gpu-report.json after $(($(date +%s) - started)) s"
