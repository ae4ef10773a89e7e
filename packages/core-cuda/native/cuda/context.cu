// The CUDA device runtime: discovery, one compute stream per device, errors, copies. Built whenever
// nvcc is found; on a machine without a GPU or driver cudaGetDeviceCount fails (error 35 and
// friends) and the count is taken as 0, so the addon still loads and reports CUDA as unavailable.
// Each device uses its primary context (cudart's, made on first use) and one non-blocking stream:
// every kernel, copy and fill runs on it, which orders all work on a device and lets the caching
// allocator (allocator.cu) hand a freed block to later work with no synchronisation.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "cuda/cublaslt.h"
#include "cuda/runtime.h"
#include "kx/device.h"
#include "kx/error.h"

namespace kx::cuda {

namespace {

struct Probe {
  int count = 0;
  std::string reason;
};

const Probe& probe() {
  static const Probe p = [] {
    Probe r;
    const cudaError_t err = cudaGetDeviceCount(&r.count);
    if (err != cudaSuccess) {
      r.count = 0;
      r.reason = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
      cudaGetLastError();  // clear the (non-sticky) error
    } else if (r.count == 0) {
      r.reason = "no CUDA device found";
    }
    return r;
  }();
  return p;
}

void check_device(int device) {
  KX_CHECK(probe().count > 0, NoCuda, "CUDA is not available: ", probe().reason);
  KX_CHECK(device >= 0 && device < probe().count, Device, "no CUDA device ", device, " (", probe().count,
           " present)");
}

// Errors after which the context is corrupt: every later CUDA call in the process fails with them.
bool is_sticky(cudaError_t err) {
  switch (err) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorHardwareStackError:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorAssert:
    case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable:
      return true;
    default:
      return false;
  }
}

// Set once by the first sticky error; from then on every use of CUDA fails fast with its message.
std::atomic<bool> g_broken{false};
std::mutex g_broken_mu;
std::string g_broken_message;

[[noreturn]] void fail_broken() {
  std::lock_guard<std::mutex> lock(g_broken_mu);
  fail(Code::Device, g_broken_message);
}

struct Streams {
  std::mutex mu;
  std::vector<cudaStream_t> by_device;  // null until the device is first used
};

Streams& streams() {
  static Streams* s = new Streams();  // never destroyed: storages may be freed during exit
  return *s;
}

// KEXUE_CUDA_LAUNCH_BLOCKING=1 waits after every launch, so that a failing kernel is the one named.
bool launch_blocking() {
  static const bool on = [] {
    const char* v = std::getenv("KEXUE_CUDA_LAUNCH_BLOCKING");
    return v && *v && std::strcmp(v, "0") != 0;
  }();
  return on;
}

// Uploads go through a ring of pinned staging slots per device: the bytes are copied into a slot and
// the stream reads the slot in order with its work, so the caller may free or reuse `src` at once
// and the host does not wait for the work queued before. (From pageable memory cudaMemcpyAsync is
// only said to be "possibly" staged before it returns; where the GPU can read pageable memory (HMM)
// it may read `src` after the call.) A slot is written again only once its event says its last
// copy has run; a large upload streams through the slots in turn.
constexpr size_t kStagingSlotBytes = size_t(1) << 20;
constexpr int kStagingSlots = 8;

struct Staging {
  std::mutex mu;
  char* base = nullptr;  // kStagingSlots slots of pinned memory; null if it could not be had
  cudaEvent_t copied[kStagingSlots] = {};
  int next = 0;
};

// The device's staging ring, made on its first upload (the device is current: stream() set it).
Staging& staging(int device) {
  static std::mutex mu;
  static std::vector<Staging*>* rings = new std::vector<Staging*>();  // never freed, as the streams
  std::lock_guard<std::mutex> lock(mu);
  if (rings->size() <= (size_t)device) rings->resize(device + 1, nullptr);
  Staging*& st = (*rings)[device];
  if (!st) {
    st = new Staging();
    void* base = nullptr;
    if (cudaHostAlloc(&base, kStagingSlots * kStagingSlotBytes, cudaHostAllocDefault) == cudaSuccess) {
      for (cudaEvent_t& e : st->copied) check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "staging events");
      st->base = static_cast<char*>(base);  // set last: a failure above leaves the waiting path
    } else {
      cudaGetLastError();  // pinned memory refused (a locked-memory limit): uploads wait instead
    }
  }
  return *st;
}

}  // namespace

bool compiled() { return true; }
std::string compiled_archs() { return KX_CUDA_ARCHS; }
int runtime_version() { return CUDART_VERSION; }
std::string blas_library() { return lt::describe(); }
int device_count() { return probe().count; }
std::string unavailable_reason() { return probe().reason; }

std::vector<CudaDeviceInfo> devices() {
  std::vector<CudaDeviceInfo> out;
  for (int i = 0; i < device_count(); ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
      cudaGetLastError();  // else the next check_launch would report this error as the kernel's
      continue;
    }
    out.push_back({i, prop.name, prop.major, prop.minor, prop.totalGlobalMem, prop.multiProcessorCount});
  }
  return out;
}

void check(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  const std::string detail = std::string(cudaGetErrorName(err)) + ": " + cudaGetErrorString(err);
  if (is_sticky(err)) {
    {
      std::lock_guard<std::mutex> lock(g_broken_mu);
      if (!g_broken.load()) {
        g_broken_message = std::string("CUDA error in ") + what + ": " + detail +
                           "; the CUDA context is unusable after this error and the process must be restarted";
        g_broken.store(true);
      }
    }
    fail_broken();
  }
  cudaGetLastError();  // a non-sticky error is cleared so that it is not reported again by the next check
  if (err == cudaErrorMemoryAllocation) fail(Code::OOM, what, ": CUDA out of memory (", detail, ")");
  fail(Code::Internal, what, ": ", detail);
}

void check_launch(const char* what) {
  check(cudaGetLastError(), what);
  if (launch_blocking()) check(cudaDeviceSynchronize(), what);
}

cudaStream_t stream(int device) {
  if (g_broken.load()) fail_broken();
  check_device(device);
  check(cudaSetDevice(device), "cudaSetDevice");
  Streams& s = streams();
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.by_device.size() <= (size_t)device) s.by_device.resize(device + 1, nullptr);
  if (!s.by_device[device]) {
    // Non-blocking: no implicit ordering with the legacy default stream, which kexue never uses.
    check(cudaStreamCreateWithFlags(&s.by_device[device], cudaStreamNonBlocking), "creating the compute stream");
  }
  return s.by_device[device];
}

void zero(const Tensor& t) { zero_bytes(t.raw(), t.nbytes(), t.device().index); }

void zero_bytes(void* dst, size_t bytes, int device) {
  cudaStream_t s = stream(device);
  if (bytes) check(cudaMemsetAsync(dst, 0, bytes, s), "zero fill");
}

void copy_to_device(void* dst, const void* src, size_t bytes, int device) {
  cudaStream_t s = stream(device);
  if (!bytes) return;
  Staging& st = staging(device);
  std::lock_guard<std::mutex> lock(st.mu);
  if (!st.base) {
    // No pinned memory to be had: copy straight from `src` and wait until the copy has read it.
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, s), "copy to device");
    check(cudaStreamSynchronize(s), "copy to device");
    return;
  }
  for (size_t done = 0; done < bytes;) {
    const size_t n = std::min(bytes - done, kStagingSlotBytes);
    const int slot = st.next;
    st.next = (st.next + 1) % kStagingSlots;
    check(cudaEventSynchronize(st.copied[slot]), "copy to device");  // the slot's last copy has read it
    char* pinned = st.base + (size_t)slot * kStagingSlotBytes;
    std::memcpy(pinned, static_cast<const char*>(src) + done, n);
    check(cudaMemcpyAsync(static_cast<char*>(dst) + done, pinned, n, cudaMemcpyHostToDevice, s), "copy to device");
    check(cudaEventRecord(st.copied[slot], s), "copy to device");
    done += n;
  }
}

void copy_to_host(void* dst, const void* src, size_t bytes, int device) {
  cudaStream_t s = stream(device);
  if (!bytes) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, s), "copy to host");
  check(cudaStreamSynchronize(s), "copy to host");
}

void copy_device(void* dst, int dst_device, const void* src, int src_device, size_t bytes) {
  if (dst_device == src_device) {
    cudaStream_t s = stream(dst_device);
    if (bytes) check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, s), "copy on device");
    return;
  }
  // Across devices: src must be written before it is read, and must not be reused by its device
  // before the copy has read it, so both streams are drained around the copy.
  cudaStream_t src_stream = stream(src_device);
  check(cudaStreamSynchronize(src_stream), "copy between devices");
  cudaStream_t dst_stream = stream(dst_device);
  if (bytes) check(cudaMemcpyPeerAsync(dst, dst_device, src, src_device, bytes, dst_stream), "copy between devices");
  check(cudaStreamSynchronize(dst_stream), "copy between devices");
}

void synchronize() {
  if (g_broken.load()) fail_broken();
  std::vector<cudaStream_t> all;
  {
    Streams& s = streams();
    std::lock_guard<std::mutex> lock(s.mu);
    all = s.by_device;
  }
  for (size_t d = 0; d < all.size(); ++d) {
    if (!all[d]) continue;
    check(cudaSetDevice((int)d), "cudaSetDevice");
    check(cudaStreamSynchronize(all[d]), "synchronize");
  }
}

}  // namespace kx::cuda
