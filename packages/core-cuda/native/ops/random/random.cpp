// Random ops on the CPU: dropout with its mask drawn from Philox (kx/philox.h), so the mask depends
// only on (seed, offset + element index) and not on how the work is split across threads.
#include "cpu/thread_pool.h"
#include "kx/convert.h"
#include "kx/philox.h"
#include "kx/registry.h"
#include "kx/simd.h"
#include "ops/random/plan.h"

namespace kx {
namespace {

// Elements [begin, end) of the tensor; random element e = offset + i uses word e % 4 of block e / 4
// (the vector run of kx/simd.h). Halves are widened and narrowed back a chunk at a time.
template <class T>
void dropout_range(const T* x, T* y, int64_t begin, int64_t end, uint64_t seed, uint64_t offset, float p,
                   float scale) {
  constexpr int64_t kChunk = 256;
  float xbuf[kChunk], ybuf[kChunk];
  for (int64_t c0 = begin; c0 < end; c0 += kChunk) {
    const int64_t len = end - c0 < kChunk ? end - c0 : kChunk;
    const float* xs = load_row(x + c0, len, xbuf);
    float* ys = out_row(y + c0, ybuf);
    simd::dropout(xs, ys, len, seed, offset + (uint64_t)c0, p, scale);
    narrow(ys, y + c0, len);
  }
}

std::vector<Tensor> dropout_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor& x = in[0];
  const DropoutParams dp = dropout_params(attrs);
  Tensor y = empty(x.shape, x.dtype, x.device());
  const int64_t n = x.numel();
  KX_DISPATCH_FLOAT(x.dtype, {
    const scalar_t* src = x.data<scalar_t>();
    scalar_t* dst = y.data<scalar_t>();
    // Philox costs ~10 multiply rounds per 4 elements: a few thousand elements per task.
    cpu::parallel_for(n, 1 << 13, [&](int64_t b, int64_t e) {
      dropout_range(src, dst, b, e, dp.seed, dp.offset, dp.p, dp.scale);
    });
  });
  return {y};
}

// Standard normals in float32 with like's shape: element i is philox_normal(seed, offset + i).
std::vector<Tensor> normal_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor& like = in[0];
  const int64_t n = like.numel();
  const PhiloxKey np = philox_key(attrs, "normal", n);
  Tensor y = empty(like.shape, DType::Float32, like.device());
  float* out = y.data<float>();
  cpu::parallel_for(n, 1 << 12, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) out[i] = philox_normal(np.seed, np.offset + (uint64_t)i);
  });
  return {y};
}

}  // namespace

KX_REGISTER_KERNEL(dropout, CPU, dropout_cpu);
KX_REGISTER_KERNEL(normal, CPU, normal_cpu);

}  // namespace kx
