// Fused optimizer updates on the CPU: one call per parameter tensor reads the parameter, its
// gradient and its state and updates the parameter and the state IN PLACE. The element loops are
// the vector runs of kx/simd.h (native/cpu/simd/optim.cpp: ops/optim/math.h's formulas in double,
// stored once per step) over float32 views of chunks; half parameters and gradients are widened a
// chunk at a time and the parameter narrowed back. Tiger's pre-pass (the gradient's finiteness and
// the parameter's RMS, per tensor or per row) runs before any element is written. Reductions use
// fixed blocks summed in order, so results do not depend on the thread count.
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "cpu/thread_pool.h"
#include "kx/convert.h"
#include "kx/registry.h"
#include "kx/simd.h"
#include "ops/optim/math.h"
#include "ops/optim/plan.h"

namespace kx {
namespace {

constexpr int64_t kBlock = 1 << 14;  // elements per reduction block (fixed: deterministic sums)
constexpr int64_t kChunk = 1024;     // elements per widened chunk of a half parameter or gradient

int64_t num_blocks(int64_t n) { return (n + kBlock - 1) / kBlock; }

// Calls run(theta, g, offset, len) over [b, e) with float32 views: the tensors' own data for
// float32, else chunks widened into buffers, the parameter narrowed back after each run.
template <class P, class G, class Run>
void on_float_chunks(P* th, const G* g, int64_t b, int64_t e, Run run) {
  if constexpr (std::is_same_v<P, float> && std::is_same_v<G, float>) {
    run(th + b, g + b, b, e - b);
  } else {
    float tb[kChunk], gb[kChunk];
    for (int64_t i = b; i < e; i += kChunk) {
      const int64_t len = std::min(kChunk, e - i);
      float* t = out_row(th + i, tb);
      widen(th + i, t, len);
      const float* gf = load_row(g + i, len, gb);
      run(t, gf, i, len);
      narrow(t, th + i, len);
    }
  }
}

// Σ x² over [0, n) of a float32 view (x itself, or widened into buf of n floats).
template <class T> double sum_sq_serial(const T* x, int64_t n, std::vector<float>& buf) {
  if constexpr (!std::is_same_v<T, float>) buf.resize((size_t)n);
  return simd::sum_sq(load_row(x, n, buf.data()), n);
}

// Σ x² over a whole tensor: per-block partials, summed in block order.
template <class T> double sum_sq(const T* x, int64_t n) {
  const int64_t blocks = num_blocks(n);
  std::vector<double> part(blocks);
  cpu::parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> buf;
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t s = b * kBlock;
      part[b] = sum_sq_serial(x + s, n - s < kBlock ? n - s : kBlock, buf);
    }
  });
  double total = 0;
  for (double p : part) total += p;
  return total;
}

// Whether every element is finite (no NaN, no ±Inf).
template <class T> bool all_finite(const T* x, int64_t n) {
  const int64_t blocks = num_blocks(n);
  std::vector<uint8_t> ok(blocks, 1);
  cpu::parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> buf(std::is_same_v<T, float> ? 0 : (size_t)kBlock);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t s = b * kBlock, len = n - s < kBlock ? n - s : kBlock;
      ok[b] = simd::all_finite(load_row(x + s, len, buf.data()), len);
    }
  });
  for (uint8_t f : ok)
    if (!f) return false;
  return true;
}

// Tiger's verdict: a [1] uint8 tensor (a list of them concatenates into one read).
Tensor flag_scalar(bool value, Device device) {
  Tensor out = empty({1}, DType::UInt8, device);
  *out.data<uint8_t>() = value ? 1 : 0;
  return out;
}

// --- Tiger -------------------------------------------------------------------------------------

template <class P, class G>
bool tiger_run(const Tensor& param, const Tensor& grad, const Tensor& mom, const TigerConfig& cfg) {
  const double lr = cfg.lr, beta = cfg.beta, wd = cfg.wd, shrink = cfg.shrink, centre = cfg.centre, gscale = cfg.gscale;
  const int64_t k = cfg.accum_steps;
  const bool first = cfg.first, update = cfg.update;
  const std::string& mode = cfg.mode;

  P* th = param.data<P>();
  const G* g = grad.data<G>();
  float* m = mom.data<float>();
  const int64_t n = param.numel();
  if (n == 0) return true;

  if (!all_finite(g, n)) {
    // §1.5: momentum kept, the parameter shrunk toward its centre (on every non-finite micro-step).
    cpu::parallel_for(n, cpu::grain_for(4), [&](int64_t b, int64_t e) {
      on_float_chunks(th, g, b, e, [&](float* t, const float*, int64_t, int64_t len) {
        simd::shrink_toward(t, len, centre, shrink);
      });
    });
    return false;
  }

  const double b1 = first ? beta : 1.0;
  const double b2 = (1.0 - beta) / (double)k;
  if (!update) {
    cpu::parallel_for(n, cpu::grain_for(4), [&](int64_t b, int64_t e) {
      std::vector<float> gb(std::is_same_v<G, float> ? 0 : (size_t)kChunk);
      for (int64_t i = b; i < e; i += kChunk) {
        const int64_t len = std::min(kChunk, e - i);
        simd::tiger_momentum(m + i, load_row(g + i, len, gb.data()), len, gscale, b1, b2);
      }
    });
    return true;
  }

  // The learning rate per row of `cols` elements, from θ before the update.
  const int64_t cols = mode == "row" && param.dim() > 0 ? param.size(-1) : n;
  const int64_t rows = cols > 0 ? n / cols : 0;
  std::vector<double> eta(rows, lr);
  if (mode == "tensor") {
    eta[0] = lr * std::sqrt(sum_sq(th, n) / (double)n);
  } else if (mode == "row") {
    cpu::parallel_for(rows, cpu::grain_for(cols), [&](int64_t r0, int64_t r1) {
      std::vector<float> buf;
      for (int64_t r = r0; r < r1; ++r) eta[r] = lr * std::sqrt(sum_sq_serial(th + r * cols, cols, buf) / (double)cols);
    });
  }
  auto step = [&](int64_t b, int64_t e, double eta_r) {
    on_float_chunks(th, g, b, e, [&](float* t, const float* gf, int64_t at, int64_t len) {
      simd::tiger_step(t, m + at, gf, len, gscale, b1, b2, eta_r, wd);
    });
  };
  if (rows == 1) {
    cpu::parallel_for(n, cpu::grain_for(8), [&](int64_t b, int64_t e) { step(b, e, eta[0]); });
  } else {
    cpu::parallel_for(rows, cpu::grain_for(8 * cols), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) step(r * cols, (r + 1) * cols, eta[r]);
    });
  }
  return true;
}

// One parameter's micro-step; whether its gradient was finite (the update applied).
bool tiger_apply(const Tensor& param, const Tensor& grad, const Tensor& mom, const TigerConfig& cfg) {
  bool finite = true;
  KX_DISPATCH_FLOAT(param.dtype, {
    using P = scalar_t;
    KX_DISPATCH_FLOAT(grad.dtype, finite = (tiger_run<P, scalar_t>(param, grad, mom, cfg)));
  });
  return finite;
}

std::vector<Tensor> tiger_cpu(const Inputs& in, const Attrs& attrs) {
  check_tiger_triple("optim_tiger", in, 0);
  return {flag_scalar(tiger_apply(in[0], in[1], in[2], tiger_config(attrs)), in[0].device())};
}

// Every triple is checked before any moves; one flag per parameter, in order.
std::vector<Tensor> tiger_group_cpu(const Inputs& in, const Attrs& attrs) {
  check_tiger_group(in);
  const TigerConfig cfg = tiger_config(attrs);
  Tensor flags = empty({(int64_t)(in.size() / 3)}, DType::UInt8, in[0].device());
  for (size_t i = 0; i < in.size(); i += 3) flags.data<uint8_t>()[i / 3] = tiger_apply(in[i], in[i + 1], in[i + 2], cfg);
  return {flags};
}

// --- Lion --------------------------------------------------------------------------------------

template <class P, class G>
void lion_run(const Tensor& param, const Tensor& grad, const Tensor& mom, const Attrs& attrs) {
  const LionConfig cfg = lion_config(attrs);
  const double lr = cfg.lr, beta1 = cfg.beta1, beta2 = cfg.beta2, wd = cfg.wd, gscale = cfg.gscale;
  P* th = param.data<P>();
  const G* g = grad.data<G>();
  float* m = mom.data<float>();
  cpu::parallel_for(param.numel(), cpu::grain_for(8), [&](int64_t b, int64_t e) {
    on_float_chunks(th, g, b, e, [&](float* t, const float* gf, int64_t at, int64_t len) {
      simd::lion(t, m + at, gf, len, gscale, lr, beta1, beta2, wd);
    });
  });
}

std::vector<Tensor> lion_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor &param = in[0], &grad = in[1], &mom = in[2];
  check_state_like(grad, param, "optim_lion", "grad", false);
  check_state_like(mom, param, "optim_lion", "m", true);
  KX_DISPATCH_FLOAT(param.dtype, {
    using P = scalar_t;
    KX_DISPATCH_FLOAT(grad.dtype, (lion_run<P, scalar_t>(param, grad, mom, attrs)));
  });
  return {};
}

// --- AdamW -------------------------------------------------------------------------------------

template <class P, class G>
void adamw_run(const Tensor& param, const Tensor& grad, const Tensor& mt, const Tensor& vt, const AdamWConfig& cfg) {
  const AdamWCoef<double>& c = cfg.coef;
  const double gscale = cfg.gscale;
  P* th = param.data<P>();
  const G* g = grad.data<G>();
  float* m = mt.data<float>();
  float* v = vt.data<float>();
  cpu::parallel_for(param.numel(), cpu::grain_for(16), [&](int64_t b, int64_t e) {
    on_float_chunks(th, g, b, e, [&](float* t, const float* gf, int64_t at, int64_t len) {
      simd::adamw(t, m + at, v + at, gf, len, gscale, c);
    });
  });
}

void adamw_apply(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const AdamWConfig& cfg) {
  KX_DISPATCH_FLOAT(param.dtype, {
    using P = scalar_t;
    KX_DISPATCH_FLOAT(grad.dtype, (adamw_run<P, scalar_t>(param, grad, m, v, cfg)));
  });
}

std::vector<Tensor> adamw_cpu(const Inputs& in, const Attrs& attrs) {
  check_adamw_quad("optim_adamw", in, 0);
  adamw_apply(in[0], in[1], in[2], in[3], adamw_config(attrs));
  return {};
}

// Every quadruple is checked before any moves.
std::vector<Tensor> adamw_group_cpu(const Inputs& in, const Attrs& attrs) {
  check_adamw_group(in);
  const AdamWConfig cfg = adamw_config(attrs);
  for (size_t i = 0; i < in.size(); i += 4) adamw_apply(in[i], in[i + 1], in[i + 2], in[i + 3], cfg);
  return {};
}

// --- SGD ---------------------------------------------------------------------------------------

template <class P, class G>
void sgd_run(const Tensor& param, const Tensor& grad, const Tensor& buf, const Attrs& attrs) {
  const SgdConfig cfg = sgd_config(attrs, buf);
  const bool nesterov = cfg.nesterov, first = cfg.first;
  const double gscale = cfg.gscale;
  P* th = param.data<P>();
  const G* g = grad.data<G>();
  float* bp = buf.defined() ? buf.data<float>() : nullptr;
  cpu::parallel_for(param.numel(), cpu::grain_for(8), [&](int64_t b, int64_t e) {
    on_float_chunks(th, g, b, e, [&](float* t, const float* gf, int64_t at, int64_t len) {
      simd::sgd(t, bp ? bp + at : nullptr, gf, len, gscale, cfg.coef, first, nesterov);
    });
  });
}

std::vector<Tensor> sgd_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor &param = in[0], &grad = in[1], &buf = in[2];
  check_state_like(grad, param, "optim_sgd", "grad", false);
  if (buf.defined()) check_state_like(buf, param, "optim_sgd", "momentum buffer", true);
  KX_DISPATCH_FLOAT(param.dtype, {
    using P = scalar_t;
    KX_DISPATCH_FLOAT(grad.dtype, (sgd_run<P, scalar_t>(param, grad, buf, attrs)));
  });
  return {};
}

// --- global norm -------------------------------------------------------------------------------

std::vector<Tensor> global_norm_cpu(const Inputs& in, const Attrs&) {
  double total = 0;
  for (const Tensor& x : in) {
    KX_CHECK(x.defined(), Arg, "optim_global_norm: missing input");
    KX_DISPATCH_FLOAT(x.dtype, total += sum_sq(x.data<scalar_t>(), x.numel()));
  }
  Tensor out = empty({}, DType::Float32, in[0].device());
  *out.data<float>() = (float)std::sqrt(total);
  return {out};
}

std::vector<Tensor> clip_factor_cpu(const Inputs& in, const Attrs& attrs) {
  const ClipAttrs c = clip_attrs(attrs);
  const Tensor& norm = in[0];
  check_clip_norm(norm);
  double n = 0;
  KX_DISPATCH_FLOAT(norm.dtype, n = to_float(*norm.data<scalar_t>()));
  Tensor out = empty({}, DType::Float32, norm.device());
  *out.data<float>() = (float)clip_factor(n, c.max_norm, c.scale);
  return {out};
}

}  // namespace

KX_REGISTER_KERNEL(optim_tiger, CPU, tiger_cpu);
KX_REGISTER_KERNEL(optim_tiger_group, CPU, tiger_group_cpu);
KX_REGISTER_KERNEL(optim_lion, CPU, lion_cpu);
KX_REGISTER_KERNEL(optim_adamw, CPU, adamw_cpu);
KX_REGISTER_KERNEL(optim_adamw_group, CPU, adamw_group_cpu);
KX_REGISTER_KERNEL(optim_sgd, CPU, sgd_cpu);
KX_REGISTER_KERNEL(optim_global_norm, CPU, global_norm_cpu);
KX_REGISTER_KERNEL(optim_clip_factor, CPU, clip_factor_cpu);

}  // namespace kx
