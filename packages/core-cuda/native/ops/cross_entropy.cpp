// Softmax cross-entropy with ignore-index on the CPU (PyTorch's F.cross_entropy, reduction 'mean').
//
// Forward: per row the logsumexp and lse - x[label]; the loss is the float32 mean over the rows
// whose label is not ignoreIndex (NaN when there are none, as PyTorch). The per-row lse is the
// second output, so the backward needs no second pass over the exponentials' sum.
// Backward: d logits = dloss / count * (softmax(x) - onehot(label)), zero on ignored rows.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "cpu/thread_pool.h"
#include "kx/convert.h"
#include "kx/registry.h"
#include "kx/softmax.h"

namespace kx {
namespace {

// Checks shapes and labels; returns the number of rows that count. Labels are checked here, not
// only in TS, because the kernels index rows with them.
int64_t check_ce(const char* op, const Tensor& logits, const Tensor& labels, int64_t ignore) {
  KX_CHECK(logits.dim() == 2, Shape, op, ": logits must be [N, C], got ", shape_str(logits.shape));
  KX_CHECK(labels.dim() == 1 && labels.shape[0] == logits.shape[0], Shape, op, ": labels ", shape_str(labels.shape),
           " do not match logits ", shape_str(logits.shape), " (expected [", logits.shape[0], "])");
  const int64_t N = logits.shape[0], C = logits.shape[1];
  const int32_t* lab = labels.data<int32_t>();
  int64_t count = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (lab[i] == ignore) continue;
    KX_CHECK(lab[i] >= 0 && lab[i] < C, Arg, op, ": label ", lab[i], " of row ", i, " is outside [0, ", C,
             ") and is not ignoreIndex ", ignore);
    ++count;
  }
  return count;
}

std::vector<Tensor> cross_entropy_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor &logits = in[0], &labels = in[1];
  const int64_t ignore = attrs.int_("ignoreIndex", -100);
  const int64_t count = check_ce("cross_entropy", logits, labels, ignore);
  const int64_t N = logits.shape[0], C = logits.shape[1];
  Tensor loss = empty({}, DType::Float32, logits.device());
  Tensor lse = empty({N}, DType::Float32, logits.device());
  std::vector<float> row_loss((size_t)N, 0.0f);
  const int32_t* lab = labels.data<int32_t>();
  float* lse_out = lse.data<float>();
  KX_DISPATCH_FLOAT(logits.dtype, {
    const scalar_t* x = logits.data<scalar_t>();
    cpu::parallel_for(N, cpu::grain_for(2 * C), [&](int64_t b, int64_t e) {
      std::vector<float> buf(std::is_same<scalar_t, float>::value ? 0 : (size_t)C);
      for (int64_t i = b; i < e; ++i) {
        const float* row = load_row(x + i * C, C, buf.data());
        if (lab[i] == ignore) {
          lse_out[i] = C > 0 ? logsumexp_row(row, C) : -INFINITY;
          continue;
        }
        row_loss[i] = cross_entropy_row(row, C, lab[i], &lse_out[i]);
      }
    });
  });
  // 0 / 0 = NaN when every row is ignored, as PyTorch.
  loss.data<float>()[0] = row_sum(row_loss.data(), N) / (float)count;
  return {loss, lse};
}

std::vector<Tensor> cross_entropy_backward_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor &logits = in[0], &labels = in[1], &lse = in[2], &dloss = in[3];
  const int64_t ignore = attrs.int_("ignoreIndex", -100);
  const int64_t count = check_ce("cross_entropy_backward", logits, labels, ignore);
  const int64_t N = logits.shape[0], C = logits.shape[1];
  KX_CHECK(lse.dtype == DType::Float32 && lse.numel() == N, Shape, "cross_entropy_backward: lse must be float32 [", N,
           "], got ", dtype_name(lse.dtype), " ", shape_str(lse.shape));
  KX_CHECK(dloss.numel() == 1, Shape, "cross_entropy_backward: dloss must have one element, got ", shape_str(dloss.shape));
  float g = 0.0f;
  KX_DISPATCH_FLOAT(dloss.dtype, g = to_float(dloss.data<scalar_t>()[0]));
  const float scale = g / (float)count;
  Tensor dx = empty(logits.shape, logits.dtype, logits.device());
  const int32_t* lab = labels.data<int32_t>();
  const float* l = lse.data<float>();
  KX_DISPATCH_FLOAT(logits.dtype, {
    const scalar_t* x = logits.data<scalar_t>();
    scalar_t* out = dx.data<scalar_t>();
    cpu::parallel_for(N, cpu::grain_for(2 * C), [&](int64_t b, int64_t e) {
      const bool f32 = std::is_same<scalar_t, float>::value;
      std::vector<float> buf(f32 ? 0 : (size_t)(2 * C));
      for (int64_t i = b; i < e; ++i) {
        scalar_t* dst = out + i * C;
        if (lab[i] == ignore) {
          std::fill(dst, dst + C, from_float<scalar_t>(0.0f));
          continue;
        }
        const float* row = load_row(x + i * C, C, buf.data());
        float* drow = out_row(dst, f32 ? nullptr : buf.data() + C);
        cross_entropy_backward_row(row, drow, C, lab[i], l[i], scale);
        narrow(drow, dst, C);
      }
    });
  });
  return {dx};
}

}  // namespace

KX_REGISTER_KERNEL(cross_entropy, CPU, cross_entropy_cpu);
KX_REGISTER_KERNEL(cross_entropy_backward, CPU, cross_entropy_backward_cpu);

}  // namespace kx
