// Softmax cross-entropy with ignore-index on the CPU (PyTorch's F.cross_entropy, reduction 'mean').
//
// Forward: per row lse - x[label]; the loss is the float32 mean over the rows whose label is not
// ignoreIndex (NaN when there are none, as PyTorch). Training asks the forward for the gradient too,
// naming the dloss it will get. Backward (when the forward was not asked, or got another dloss):
// d logits = dloss / count * (softmax(x) - onehot(label)), zero on ignored rows.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "cpu/thread_pool.h"
#include "kx/convert.h"
#include "kx/registry.h"
#include "kx/simd.h"
#include "ops/cross_entropy/plan.h"

namespace kx {
namespace {

// One pass over the rows: the loss of each counted row into row_loss (when not null) and, when dx
// is not null, its gradient scale * (softmax - onehot) (zero on ignored rows).
template <class T>
void cross_entropy_rows(const T* x, const int32_t* lab, int64_t N, int64_t C, int64_t ignore, float scale, T* dx,
                        float* row_loss) {
  constexpr bool f32 = std::is_same<T, float>::value;
  cpu::parallel_for(N, cpu::grain_for(2 * C), [&](int64_t b, int64_t e) {
    std::vector<float> xbuf(f32 ? 0 : (size_t)C);
    std::vector<float> dbuf(dx && !f32 ? (size_t)C : 0);
    for (int64_t i = b; i < e; ++i) {
      T* drow = dx ? dx + i * C : nullptr;
      if (lab[i] == ignore) {
        if (drow) std::fill(drow, drow + C, from_float<T>(0.0f));
        continue;
      }
      const float* row = load_row(x + i * C, C, xbuf.data());
      if (!drow) {
        row_loss[i] = simd::logsumexp_row(row, C) - row[lab[i]];
        continue;
      }
      float* g = out_row(drow, dbuf.data());
      const float loss = simd::cross_entropy_row_grad(row, g, C, lab[i], scale);
      if (row_loss) row_loss[i] = loss;
      narrow(g, drow, C);
    }
  });
}

// cross_entropy(logits, labels; ignoreIndex, dloss) -> loss [, d logits for that dloss]. With dloss the
// gradient comes from the forward's own exponentials, so a training step reads the logits once.
std::vector<Tensor> cross_entropy_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor &logits = in[0], &labels = in[1];
  const int64_t ignore = attrs.int_("ignoreIndex", -100);
  const int64_t count = check_ce("cross_entropy", logits, labels, labels.data<int32_t>(), ignore);
  const int64_t N = logits.shape[0], C = logits.shape[1];
  const bool with_grad = attrs.has("dloss");
  Tensor loss = empty({}, DType::Float32, logits.device());
  Tensor dx = with_grad ? empty(logits.shape, logits.dtype, logits.device()) : Tensor{};
  std::vector<float> row_loss((size_t)N, 0.0f);
  KX_DISPATCH_FLOAT(logits.dtype, cross_entropy_rows(logits.data<scalar_t>(), labels.data<int32_t>(), N, C, ignore,
                                                     (float)attrs.num("dloss", 1.0) / (float)count,
                                                     with_grad ? dx.data<scalar_t>() : nullptr, row_loss.data()));
  // 0 / 0 = NaN when every row is ignored, as PyTorch.
  loss.data<float>()[0] = simd::row_sum(row_loss.data(), N) / (float)count;
  if (with_grad) return {loss, dx};
  return {loss};
}

std::vector<Tensor> cross_entropy_backward_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor &logits = in[0], &labels = in[1], &dloss = in[2];
  const int64_t ignore = attrs.int_("ignoreIndex", -100);
  const int64_t count = check_ce("cross_entropy_backward", logits, labels, labels.data<int32_t>(), ignore);
  const int64_t N = logits.shape[0], C = logits.shape[1];
  check_ce_dloss(dloss);
  float g = 0.0f;
  KX_DISPATCH_FLOAT(dloss.dtype, g = to_float(dloss.data<scalar_t>()[0]));
  Tensor dx = empty(logits.shape, logits.dtype, logits.device());
  KX_DISPATCH_FLOAT(logits.dtype, cross_entropy_rows(logits.data<scalar_t>(), labels.data<int32_t>(), N, C, ignore,
                                                     g / (float)count, dx.data<scalar_t>(), nullptr));
  return {dx};
}

}  // namespace

KX_REGISTER_KERNEL(cross_entropy, CPU, cross_entropy_cpu);
KX_REGISTER_KERNEL(cross_entropy_backward, CPU, cross_entropy_backward_cpu);

}  // namespace kx
