// The cuBLASLt loader (see cublaslt.h). The handful of types, enum values and signatures used are
// declared here from NVIDIA's public cuBLASLt reference (https://docs.nvidia.com/cuda/cublas/,
// section "Using the cuBLASLt API"; the values as listed by the nvmath-python bindings at
// https://docs.nvidia.com/cuda/nvmath-python/latest/bindings/cublasLt.html). They have kept their
// values since CUDA 11, so one declaration serves libcublasLt.so.12 and .so.13.
#include "cuda/cublaslt.h"

#include <dlfcn.h>
#include <glob.h>
#include <library_types.h>  // cudaDataType: CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14
#include <sys/stat.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

namespace kx::cuda::lt {
namespace {

// ---- declarations (docs.nvidia.com/cuda/cublas, "cuBLASLt Datatypes Reference") ----------------
using Status = int;  // cublasStatus_t; CUBLAS_STATUS_SUCCESS = 0
constexpr Status kSuccess = 0;
using Handle = void*;  // cublasLtHandle_t, cublasLtMatmulDesc_t, ...: pointers to opaque structs
using Desc = void*;
using Layout = void*;
using Preference = void*;

struct Algo {  // cublasLtMatmulAlgo_t: 64 opaque bytes
  uint64_t data[8];
};
struct HeuristicResult {  // cublasLtMatmulHeuristicResult_t
  Algo algo;
  size_t workspaceSize;
  Status state;
  float wavesCount;
  int reserved[4];
};

// cublasComputeType_t (nvmath.bindings.cublas.ComputeType): exact float32 compute. Not
// CUBLAS_COMPUTE_32F_FAST_TF32 (77), which would round float32 operands to 10-bit mantissas.
constexpr int kCompute32F = 68;
// cublasOperation_t
constexpr int kOpN = 0, kOpT = 1;
// cublasLtMatmulDescAttributes_t (nvmath.bindings.cublasLt.MatmulDescAttribute)
constexpr int kDescTransA = 3, kDescTransB = 4, kDescEpilogue = 7, kDescBiasPointer = 8;
// The bias type is left at its default, the type of D (CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, whose
// value moved between releases): kexue's bias always has the output's dtype.
// cublasLtEpilogue_t (nvmath.bindings.cublasLt.Epilogue)
constexpr uint32_t kEpilogueDefault = 1, kEpilogueBias = 4, kEpilogueGeluBias = 36;
// cublasLtMatrixLayoutAttribute_t (nvmath.bindings.cublasLt.MatrixLayoutAttribute)
constexpr int kLayoutBatchCount = 5, kLayoutStridedBatchOffset = 6;
// cublasLtMatmulPreferenceAttributes_t (nvmath.bindings.cublasLt.MatmulPreferenceAttribute)
constexpr int kPrefMaxWorkspaceBytes = 1, kPrefMinAlignA = 5, kPrefMinAlignB = 6, kPrefMinAlignC = 7,
              kPrefMinAlignD = 8;

// 32 MiB: NVIDIA's recommended cuBLASLt workspace for Hopper (enough for every algorithm on Ampere).
constexpr size_t kMaxWorkspace = size_t(32) << 20;

struct Api {
  void* lib = nullptr;
  std::string description;
  size_t (*GetVersion)();
  Status (*Create)(Handle*);
  Status (*MatmulDescCreate)(Desc*, int compute_type, cudaDataType scale_type);
  Status (*MatmulDescDestroy)(Desc);
  Status (*MatmulDescSetAttribute)(Desc, int attr, const void* buf, size_t bytes);
  Status (*MatrixLayoutCreate)(Layout*, cudaDataType type, uint64_t rows, uint64_t cols, int64_t ld);
  Status (*MatrixLayoutDestroy)(Layout);
  Status (*MatrixLayoutSetAttribute)(Layout, int attr, const void* buf, size_t bytes);
  Status (*MatmulPreferenceCreate)(Preference*);
  Status (*MatmulPreferenceDestroy)(Preference);
  Status (*MatmulPreferenceSetAttribute)(Preference, int attr, const void* buf, size_t bytes);
  Status (*MatmulAlgoGetHeuristic)(Handle, Desc, Layout a, Layout b, Layout c, Layout d, Preference, int requested,
                                   HeuristicResult* results, int* returned);
  Status (*Matmul)(Handle, Desc, const void* alpha, const void* a, Layout, const void* b, Layout, const void* beta,
                   const void* c, Layout, void* d, Layout, const Algo* algo, void* workspace, size_t workspace_bytes,
                   cudaStream_t stream);
};

bool is_dir(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The places to try, in order (see cublaslt.h); empty when $KEXUE_CUBLASLT turns cuBLASLt off.
std::vector<std::string> candidates() {
  static const char* const kNames[] = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"};
  std::vector<std::string> out;
  auto add_folder = [&](const std::string& dir) {
    for (const char* name : kNames) out.push_back(dir + "/" + name);
  };
  if (const char* env = std::getenv("KEXUE_CUBLASLT"); env && *env) {
    const std::string v = env;
    if (v == "0" || v == "off" || v == "none") return {};
    if (is_dir(v)) add_folder(v);
    else out.push_back(v);
  }
  for (const char* name : kNames) out.push_back(name);
  for (const char* dir : {"/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib",
                          "/usr/local/cuda/targets/sbsa-linux/lib", "/usr/lib/x86_64-linux-gnu",
                          "/usr/lib/aarch64-linux-gnu", "/opt/conda/lib"})
    add_folder(dir);
  // pip's wheels, as PyTorch installs them: nvidia-cublas-cu12 in nvidia/cublas/lib, CUDA 13's
  // nvidia-cublas in nvidia/cu13/lib; in the system's, the user's, conda's or a virtual environment's
  // site-packages ($VIRTUAL_ENV, or one kept under /opt as images do).
  std::vector<std::string> site_patterns = {"/usr/local/lib/python3*/*-packages", "/usr/lib/python3*/*-packages",
                                            "/opt/conda/lib/python3*/site-packages",
                                            "/opt/*/.venv/lib/python3*/site-packages"};
  if (const char* home = std::getenv("HOME")) site_patterns.push_back(std::string(home) + "/.local/lib/python3*/site-packages");
  if (const char* venv = std::getenv("VIRTUAL_ENV")) site_patterns.push_back(std::string(venv) + "/lib/python3*/site-packages");
  for (const std::string& site : site_patterns) {
    for (const char* sub : {"/nvidia/cublas/lib", "/nvidia/cu13/lib"}) {
      glob_t g;
      if (glob((site + sub).c_str(), 0, nullptr, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; ++i) add_folder(g.gl_pathv[i]);
      globfree(&g);
    }
  }
  return out;
}

template <class F>
bool bind(void* lib, const char* name, F*& fn) {
  fn = reinterpret_cast<F*>(dlsym(lib, name));
  return fn != nullptr;
}

Api open_api() {
  Api api{};
  const std::vector<std::string> paths = candidates();
  if (paths.empty()) {
    api.description = "cuBLASLt turned off by KEXUE_CUBLASLT";
    return api;
  }
  for (const std::string& path : paths) {
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) continue;
    const bool ok = bind(lib, "cublasLtGetVersion", api.GetVersion) && bind(lib, "cublasLtCreate", api.Create) &&
                    bind(lib, "cublasLtMatmulDescCreate", api.MatmulDescCreate) &&
                    bind(lib, "cublasLtMatmulDescDestroy", api.MatmulDescDestroy) &&
                    bind(lib, "cublasLtMatmulDescSetAttribute", api.MatmulDescSetAttribute) &&
                    bind(lib, "cublasLtMatrixLayoutCreate", api.MatrixLayoutCreate) &&
                    bind(lib, "cublasLtMatrixLayoutDestroy", api.MatrixLayoutDestroy) &&
                    bind(lib, "cublasLtMatrixLayoutSetAttribute", api.MatrixLayoutSetAttribute) &&
                    bind(lib, "cublasLtMatmulPreferenceCreate", api.MatmulPreferenceCreate) &&
                    bind(lib, "cublasLtMatmulPreferenceDestroy", api.MatmulPreferenceDestroy) &&
                    bind(lib, "cublasLtMatmulPreferenceSetAttribute", api.MatmulPreferenceSetAttribute) &&
                    bind(lib, "cublasLtMatmulAlgoGetHeuristic", api.MatmulAlgoGetHeuristic) &&
                    bind(lib, "cublasLtMatmul", api.Matmul);
    if (!ok) {
      dlclose(lib);
      continue;
    }
    api.lib = lib;
    api.description = path + " (cuBLASLt " + std::to_string(api.GetVersion()) + ")";
    return api;
  }
  api.description = "libcublasLt.so.13/.so.12 not found (set KEXUE_CUBLASLT to its path)";
  return api;
}

const Api& api() {
  static const Api a = open_api();
  return a;
}

cudaDataType data_type(DType t) {
  return t == DType::Float16 ? CUDA_R_16F : t == DType::BFloat16 ? CUDA_R_16BF : CUDA_R_32F;
}

// The largest power of two (up to 256, cuBLASLt's default requirement) dividing the address and,
// for a batch, the byte stride between matrices.
uint32_t alignment(const void* p, int64_t stride_bytes, int64_t batch) {
  uint64_t bits = (uint64_t)(uintptr_t)p | 256;
  if (batch > 1 && stride_bytes) bits |= (uint64_t)stride_bytes;
  return (uint32_t)(bits & (~bits + 1));
}

// A product's shape, as far as the choice of algorithm goes.
using Key = std::tuple<int, int, bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int,
                       uint32_t, uint32_t, uint32_t>;

// Descriptors and the chosen algorithm for one Key, made once and kept.
struct Plan {
  bool ok = false;
  Desc desc = nullptr;
  Layout la = nullptr, lb = nullptr, lc = nullptr;
  Algo algo{};
  size_t workspace = 0;
};

struct State {
  std::mutex mu;
  std::map<int, Handle> handles;  // per device
  std::map<Key, Plan> plans;
};

State& state() {
  static State* s = new State;  // never destroyed: the library may be gone at exit
  return *s;
}

Layout make_layout(const Api& f, cudaDataType type, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                   int64_t stride) {
  Layout l = nullptr;
  if (f.MatrixLayoutCreate(&l, type, (uint64_t)rows, (uint64_t)cols, ld) != kSuccess) return nullptr;
  if (batch > 1) {
    const int32_t count = (int32_t)batch;
    if (f.MatrixLayoutSetAttribute(l, kLayoutBatchCount, &count, sizeof count) != kSuccess ||
        f.MatrixLayoutSetAttribute(l, kLayoutStridedBatchOffset, &stride, sizeof stride) != kSuccess) {
      f.MatrixLayoutDestroy(l);
      return nullptr;
    }
  }
  return l;
}

// Row-major kexue products are column-major cuBLASLt products transposed: c^T[n, m] = op(b)^T op(a)^T,
// so cuBLASLt's A is our b and its B our a, and our c [m, n] row-major is its D [n, m] column-major
// with the bias running down D's rows, as cuBLASLt's bias epilogue does.
Plan make_plan(const Api& f, Handle handle, const Gemm& g, uint32_t align_a, uint32_t align_b, uint32_t align_c) {
  Plan p;
  const cudaDataType type = data_type(g.dtype);
  if (f.MatmulDescCreate(&p.desc, kCompute32F, CUDA_R_32F) != kSuccess) return p;
  const int32_t op_a = g.tb ? kOpT : kOpN, op_b = g.ta ? kOpT : kOpN;
  const uint32_t epilogue = g.epilogue == Epilogue::Bias       ? kEpilogueBias
                            : g.epilogue == Epilogue::BiasGelu ? kEpilogueGeluBias
                                                               : kEpilogueDefault;
  bool ok = f.MatmulDescSetAttribute(p.desc, kDescTransA, &op_a, sizeof op_a) == kSuccess &&
            f.MatmulDescSetAttribute(p.desc, kDescTransB, &op_b, sizeof op_b) == kSuccess &&
            f.MatmulDescSetAttribute(p.desc, kDescEpilogue, &epilogue, sizeof epilogue) == kSuccess;
  // Layouts describe the stored matrices, column-major: our b, row-major [k, n] (or [n, k] when tb),
  // is column-major [n, k] (or [k, n]); likewise our a.
  p.la = g.tb ? make_layout(f, type, g.k, g.n, g.k, g.batch, g.stride_b)
              : make_layout(f, type, g.n, g.k, g.n, g.batch, g.stride_b);
  p.lb = g.ta ? make_layout(f, type, g.m, g.k, g.m, g.batch, g.stride_a)
              : make_layout(f, type, g.k, g.m, g.k, g.batch, g.stride_a);
  p.lc = make_layout(f, type, g.n, g.m, g.n, g.batch, g.stride_c);
  ok = ok && p.la && p.lb && p.lc;
  Preference pref = nullptr;
  ok = ok && f.MatmulPreferenceCreate(&pref) == kSuccess;
  if (ok) {
    const uint64_t max_ws = kMaxWorkspace;
    // cuBLASLt's A is our b, its B our a (see above).
    ok = f.MatmulPreferenceSetAttribute(pref, kPrefMaxWorkspaceBytes, &max_ws, sizeof max_ws) == kSuccess &&
         f.MatmulPreferenceSetAttribute(pref, kPrefMinAlignA, &align_b, sizeof align_b) == kSuccess &&
         f.MatmulPreferenceSetAttribute(pref, kPrefMinAlignB, &align_a, sizeof align_a) == kSuccess &&
         f.MatmulPreferenceSetAttribute(pref, kPrefMinAlignC, &align_c, sizeof align_c) == kSuccess &&
         f.MatmulPreferenceSetAttribute(pref, kPrefMinAlignD, &align_c, sizeof align_c) == kSuccess;
    HeuristicResult result{};
    int returned = 0;
    ok = ok &&
         f.MatmulAlgoGetHeuristic(handle, p.desc, p.la, p.lb, p.lc, p.lc, pref, 1, &result, &returned) == kSuccess &&
         returned > 0 && result.state == kSuccess;
    if (ok) {
      p.algo = result.algo;
      p.workspace = result.workspaceSize;
    }
    f.MatmulPreferenceDestroy(pref);
  }
  p.ok = ok;
  if (!ok) {  // keep the negative answer, without descriptors
    if (p.la) f.MatrixLayoutDestroy(p.la);
    if (p.lb) f.MatrixLayoutDestroy(p.lb);
    if (p.lc) f.MatrixLayoutDestroy(p.lc);
    if (p.desc) f.MatmulDescDestroy(p.desc);
    p = Plan{};
  }
  return p;
}

}  // namespace

bool available() { return api().lib != nullptr; }

std::string describe() { return api().description; }

bool matmul(const Gemm& g, const std::function<void*(size_t)>& workspace, cudaStream_t stream, int device) {
  const Api& f = api();
  if (!f.lib || g.m <= 0 || g.n <= 0 || g.k <= 0 || g.batch <= 0) return false;
  if ((g.epilogue == Epilogue::None) != (g.bias == nullptr)) return false;
  const int64_t esize = g.dtype == DType::Float32 ? 4 : 2;
  const uint32_t align_a = alignment(g.a, g.stride_a * esize, g.batch);
  const uint32_t align_b = alignment(g.b, g.stride_b * esize, g.batch);
  const uint32_t align_c = alignment(g.c, g.stride_c * esize, g.batch);
  const Key key{device, (int)g.dtype, g.ta, g.tb, g.m, g.n, g.k, g.batch, g.stride_a, g.stride_b, g.stride_c,
                (int)g.epilogue, align_a, align_b, align_c};

  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  auto h = s.handles.find(device);
  if (h == s.handles.end()) {
    Handle handle = nullptr;
    if (f.Create(&handle) != kSuccess) handle = nullptr;
    h = s.handles.emplace(device, handle).first;
  }
  if (!h->second) return false;
  auto it = s.plans.find(key);
  if (it == s.plans.end()) it = s.plans.emplace(key, make_plan(f, h->second, g, align_a, align_b, align_c)).first;
  const Plan& p = it->second;
  if (!p.ok) return false;
  // The bias address changes per call; the descriptor is only used under the lock.
  if (g.bias && f.MatmulDescSetAttribute(p.desc, kDescBiasPointer, &g.bias, sizeof g.bias) != kSuccess) return false;
  void* ws = p.workspace ? workspace(p.workspace) : nullptr;
  const float alpha = 1.0f, beta = 0.0f;
  return f.Matmul(h->second, p.desc, &alpha, g.b, p.la, g.a, p.lb, &beta, g.c, p.lc, g.c, p.lc, &p.algo, ws,
                  p.workspace, stream) == kSuccess;
}

}  // namespace kx::cuda::lt
