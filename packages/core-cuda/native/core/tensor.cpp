#include "kx/tensor.h"

#include <sstream>

#include "kx/allocator.h"
#include "kx/error.h"

namespace kx {

namespace {
std::atomic<int64_t> g_storages{0}, g_bytes{0}, g_peak{0}, g_cuda_bytes{0};
// Zero-initialised before any registrar runs (static initialisation precedes dynamic).
Allocator g_allocators[kNumDeviceTypes] = {};
}  // namespace

void register_allocator(DeviceType type, const Allocator& a) { g_allocators[(int)type] = a; }

const Allocator& allocator(DeviceType type) {
  const Allocator& a = g_allocators[(int)type];
  KX_CHECK(a.alloc, Internal, "no allocator registered for device type ", (int)type);
  return a;
}

// Element count; a shape whose count overflows (or exceeds 2^48, far past any memory) is an error,
// so that no tensor ever claims more elements than its storage holds.
int64_t numel_of(const Shape& s) {
  constexpr int64_t kMaxElements = int64_t(1) << 48;
  int64_t n = 1;
  bool too_big = false;
  for (int64_t d : s) {
    if (d == 0) return 0;
    too_big = too_big || __builtin_mul_overflow(n, d, &n) || n > kMaxElements;
  }
  if (too_big) fail(Code::Arg, "shape ", shape_str(s), " has more elements than can be addressed");
  return n;
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}

std::string Device::name() const {
  return type == DeviceType::CPU ? std::string("cpu") : "cuda:" + std::to_string(index);
}

Storage::Storage(size_t nbytes, Device dev) : bytes(nbytes), device(dev) {
  data = allocator(dev.type).alloc(nbytes, dev.index, &capacity);
  if (dev.type == DeviceType::CUDA) g_cuda_bytes += (int64_t)nbytes;
  g_storages += 1;
  const int64_t now = (g_bytes += (int64_t)nbytes);
  int64_t peak = g_peak.load();
  while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {}
}

Storage::~Storage() {
  g_allocators[(int)device.type].free(data, capacity, device.index);  // (registered: the constructor allocated)
  if (device.type == DeviceType::CUDA) g_cuda_bytes -= (int64_t)bytes;
  g_storages -= 1;
  g_bytes -= (int64_t)bytes;
}

Tensor empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape) KX_CHECK(d >= 0, Arg, "negative dimension in shape ", shape_str(shape));
  Tensor t;
  t.shape = shape;
  t.dtype = dtype;
  t.storage = std::make_shared<Storage>((size_t)numel_of(shape) * dtype_size(dtype), device);
  return t;
}

Tensor zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  allocator(device.type).zero(t.raw(), t.nbytes(), device.index);
  return t;
}

Tensor view(const Tensor& t, const Shape& shape) {
  KX_CHECK(numel_of(shape) == t.numel(), Shape, "cannot view ", shape_str(t.shape), " as ", shape_str(shape));
  Tensor v = t;
  v.shape = shape;
  return v;
}

MemoryStats memory_stats() { return {g_storages.load(), g_bytes.load(), g_peak.load(), g_cuda_bytes.load()}; }

}  // namespace kx
