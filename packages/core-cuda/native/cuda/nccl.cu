// NCCL for kx::dist (see cuda/api.h), opened with dlopen so that the addon builds without NCCL's
// headers and loads without the library. The few types, enum values and signatures used are
// declared here from NCCL's public API reference (docs.nvidia.com/deeplearning/nccl, "API"): they
// have kept their values since NCCL 2.10 (ncclAvg), and libnccl.so.2 is the library's stable ABI.
#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <string>

#include "cuda/api.h"
#include "cuda/runtime.h"
#include "kx/error.h"

namespace kx::cuda {
namespace {

using Result = int;  // ncclResult_t; ncclSuccess = 0
using Comm = void*;  // ncclComm_t: a pointer to an opaque struct
struct UniqueId {    // ncclUniqueId
  char internal[128];
};
// ncclDataType_t
constexpr int kInt32 = 2, kFloat16 = 6, kFloat32 = 7, kBFloat16 = 9;
// ncclRedOp_t
constexpr int kSum = 0, kAvg = 4;

struct Nccl {
  Result (*get_unique_id)(UniqueId*);
  Result (*comm_init_rank)(Comm*, int nranks, UniqueId id, int rank);
  Result (*all_reduce)(const void*, void*, size_t, int dtype, int op, Comm, cudaStream_t);
  Result (*broadcast)(const void*, void*, size_t, int dtype, int root, Comm, cudaStream_t);
  Result (*group_start)();
  Result (*group_end)();
  const char* (*error_string)(Result);
};

template <class T>
void bind(T& fn, void* lib, const char* name) {
  fn = reinterpret_cast<T>(dlsym(lib, name));
  KX_CHECK(fn, NoMpi, "NCCL's library has no symbol ", name, ": NCCL 2.10 or later is needed");
}

const Nccl& nccl() {
  static Nccl lib{};
  static std::string error;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("KEXUE_NCCL_LIBRARY");
    void* handle = dlopen(env && *env ? env : "libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      error = std::string("NCCL is not available (") + dlerror() +
              "): install NCCL 2 (libnccl2, or pip's nvidia-nccl-cu12 with its lib/ directory on LD_LIBRARY_PATH), or set KEXUE_NCCL_LIBRARY to libnccl.so.2";
      return;
    }
    try {
      bind(lib.get_unique_id, handle, "ncclGetUniqueId");
      bind(lib.comm_init_rank, handle, "ncclCommInitRank");
      bind(lib.all_reduce, handle, "ncclAllReduce");
      bind(lib.broadcast, handle, "ncclBroadcast");
      bind(lib.group_start, handle, "ncclGroupStart");
      bind(lib.group_end, handle, "ncclGroupEnd");
      bind(lib.error_string, handle, "ncclGetErrorString");
    } catch (const Error& e) {
      error = e.what();
    }
  });
  KX_CHECK(error.empty(), NoMpi, error);
  return lib;
}

void check_nccl(Result r, const char* what) {
  KX_CHECK(r == 0, Dist, "dist: ", what, " failed: ", nccl().error_string(r));
}

int nccl_dtype(DType t) {
  switch (t) {
    case DType::Float32: return kFloat32;
    case DType::Float16: return kFloat16;
    case DType::BFloat16: return kBFloat16;
    case DType::Int32: return kInt32;
    default: fail(Code::DType, "dist: NCCL does not reduce ", dtype_name(t));
  }
}

Comm g_comm = nullptr;

// One NCCL group over the buffers: NCCL fuses them into few launches.
template <class Each>
void grouped(const std::vector<NcclBuffer>& buffers, int device, const char* what, Each each) {
  KX_CHECK(g_comm, Internal, "dist: NCCL used before nccl_init");
  cudaStream_t s = stream(device);
  check_nccl(nccl().group_start(), "ncclGroupStart");
  for (const NcclBuffer& b : buffers) check_nccl(each(b, s), what);
  check_nccl(nccl().group_end(), "ncclGroupEnd");
}

}  // namespace

NcclId nccl_unique_id() {
  UniqueId id;
  check_nccl(nccl().get_unique_id(&id), "ncclGetUniqueId");
  NcclId out;
  static_assert(sizeof out.bytes == sizeof id.internal, "ncclUniqueId is 128 bytes");
  std::copy(id.internal, id.internal + sizeof id.internal, out.bytes);
  return out;
}

void nccl_init(const NcclId& id, int rank, int size, int device) {
  UniqueId uid;
  std::copy(id.bytes, id.bytes + sizeof id.bytes, uid.internal);
  stream(device);  // makes the device current on this thread, as ncclCommInitRank requires
  check_nccl(nccl().comm_init_rank(&g_comm, size, uid, rank), "ncclCommInitRank");
}

void nccl_all_reduce(const std::vector<NcclBuffer>& buffers, bool mean, int device) {
  grouped(buffers, device, "ncclAllReduce", [&](const NcclBuffer& b, cudaStream_t s) {
    return nccl().all_reduce(b.data, b.data, b.count, nccl_dtype(b.dtype), mean ? kAvg : kSum, g_comm, s);
  });
}

void nccl_broadcast(const std::vector<NcclBuffer>& buffers, int root, int device) {
  grouped(buffers, device, "ncclBroadcast", [&](const NcclBuffer& b, cudaStream_t s) {
    // bytes as int8 (0): a broadcast copies, whatever the dtype
    return nccl().broadcast(b.data, b.data, b.count * dtype_size(b.dtype), 0, root, g_comm, s);
  });
}

}  // namespace kx::cuda
