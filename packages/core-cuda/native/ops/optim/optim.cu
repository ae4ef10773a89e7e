// Fused optimizer updates on CUDA, the twin of optim.cpp: one call per parameter tensor (AdamW also
// one per list) updates the parameter and its float32 state IN PLACE with ops/optim/math.h's
// element math in double; validation and attributes from ops/optim/plan.h; kernels from
// ops/optim/kernels.cuh. Tiger's result flag is written on the device (a uint8 scalar on the
// parameter's device), so a step never waits for the host.
#include <string>

#include "cuda/runtime.h"
#include "ops/optim/kernels.cuh"
#include "ops/optim/plan.h"

namespace kx {
namespace {

// One parameter's micro-step; its verdict goes to the device byte `flag`.
template <class P, class G>
void tiger_run(const Tensor& param, const Tensor& grad, const Tensor& mom, const TigerConfig& cfg, uint8_t* flag) {
  const int64_t n = param.numel();
  cudaStream_t stream = cuda::stream(param);
  if (n == 0) {
    cuda::check(cudaMemsetAsync(flag, 1, 1, stream), "optim_tiger");
    return;
  }
  // η per row of the last axis for rms row (one row: the tensor's RMS), as the CPU.
  const int64_t cols = cfg.mode == "row" && param.dim() > 0 ? param.size(-1) : n;
  const int64_t rows = n / cols;
  const bool tensor_rms = cfg.mode == "tensor" || (cfg.mode == "row" && rows == 1);
  cuda::TigerStep s;
  s.lr = cfg.lr;
  s.b1 = cfg.first ? cfg.beta : 1.0;
  s.b2 = (1.0 - cfg.beta) / (double)cfg.accum_steps;
  s.wd = cfg.wd;
  s.shrink = cfg.shrink;
  s.centre = cfg.centre;
  s.gscale = cfg.gscale;
  s.update = cfg.update;
  Tensor scratch = empty({(int64_t)cuda::tiger_scratch_bytes(n, rows)}, DType::UInt8, param.device());
  cuda::launch_tiger(param.data<P>(), grad.data<G>(), mom.data<float>(), n, cfg.mode == "row" ? rows : 1, cols,
                     tensor_rms, s, scratch.raw(), flag, stream);
}

void tiger_apply(const Tensor& param, const Tensor& grad, const Tensor& mom, const TigerConfig& cfg, uint8_t* flag) {
  KX_DISPATCH_FLOAT(param.dtype, {
    using P = scalar_t;
    KX_DISPATCH_FLOAT(grad.dtype, (tiger_run<P, scalar_t>(param, grad, mom, cfg, flag)));
  });
  cuda::check_launch("optim_tiger");
}

std::vector<Tensor> tiger_cuda(const Inputs& in, const Attrs& attrs) {
  check_tiger_triple("optim_tiger", in, 0);
  Tensor flag = empty({1}, DType::UInt8, in[0].device());  // [1]: a step's flags concatenate into one read
  tiger_apply(in[0], in[1], in[2], tiger_config(attrs), flag.data<uint8_t>());
  return {flag};
}

// One call for a parameter list (each still its own launches); every triple is checked before
// any is queued; one flag per parameter, in order, written on the device.
std::vector<Tensor> tiger_group_cuda(const Inputs& in, const Attrs& attrs) {
  check_tiger_group(in);
  const TigerConfig cfg = tiger_config(attrs);
  Tensor flags = empty({(int64_t)(in.size() / 3)}, DType::UInt8, in[0].device());
  for (size_t i = 0; i < in.size(); i += 3) tiger_apply(in[i], in[i + 1], in[i + 2], cfg, flags.data<uint8_t>() + i / 3);
  return {flags};
}

std::vector<Tensor> lion_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor &param = in[0], &grad = in[1], &mom = in[2];
  check_state_like(grad, param, "optim_lion", "grad", false);
  check_state_like(mom, param, "optim_lion", "m", true);
  const LionConfig c = lion_config(attrs);
  const int64_t n = param.numel();
  cudaStream_t stream = cuda::stream(param);
  KX_DISPATCH_FLOAT(param.dtype, {
    using P = scalar_t;
    KX_DISPATCH_FLOAT(grad.dtype, (cuda::lion_kernel<P, scalar_t><<<cuda::blocks_for(n, cuda::kThreads),
                                                                     cuda::kThreads, 0, stream>>>(
                                      param.data<P>(), grad.data<scalar_t>(), mom.data<float>(), n, c.lr, c.beta1,
                                      c.beta2, c.wd, c.gscale)));
  });
  cuda::check_launch("optim_lion");
  return {};
}

void adamw_launch(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const AdamWConfig& c) {
  const int64_t n = param.numel();
  cudaStream_t stream = cuda::stream(param);
  KX_DISPATCH_FLOAT(param.dtype, {
    using P = scalar_t;
    KX_DISPATCH_FLOAT(grad.dtype, (cuda::adamw_kernel<P, scalar_t><<<cuda::blocks_for(n, cuda::kThreads),
                                                                      cuda::kThreads, 0, stream>>>(
                                      param.data<P>(), grad.data<scalar_t>(), m.data<float>(), v.data<float>(), n,
                                      c.coef, c.gscale)));
  });
  cuda::check_launch("optim_adamw");
}

std::vector<Tensor> adamw_cuda(const Inputs& in, const Attrs& attrs) {
  check_adamw_quad("optim_adamw", in, 0);
  adamw_launch(in[0], in[1], in[2], in[3], adamw_config(attrs));
  return {};
}

// The parameters of quadruples `at` (one param/grad dtype pair) in one launch: their slice table is
// uploaded (staged, no wait) into a scratch tensor that the stream-ordered allocator keeps until
// the kernel has read it.
template <class P, class G>
void adamw_list_launch(const Inputs& in, const std::vector<size_t>& at, const AdamWConfig& cfg) {
  std::vector<cuda::AdamWSlice> slices;
  int64_t chunks = 0;
  for (size_t i : at) {
    const int64_t n = in[i].numel();
    if (n == 0) continue;
    slices.push_back({in[i].raw(), in[i + 1].raw(), in[i + 2].data<float>(), in[i + 3].data<float>(), n, chunks});
    chunks += (n + cuda::kAdamWChunk - 1) / cuda::kAdamWChunk;
  }
  if (slices.empty()) return;
  const Device device = in[at[0]].device();
  const size_t bytes = slices.size() * sizeof(cuda::AdamWSlice);
  Tensor table = empty({(int64_t)bytes}, DType::UInt8, device);
  cuda::copy_to_device(table.raw(), slices.data(), bytes, device.index);
  const unsigned grid = (unsigned)(chunks < (int64_t(1) << 20) ? chunks : (int64_t(1) << 20));
  cuda::adamw_list_kernel<P, G><<<grid, cuda::kThreads, 0, cuda::stream(in[at[0]])>>>(
      static_cast<const cuda::AdamWSlice*>(table.raw()), (int)slices.size(), chunks, cfg.coef, cfg.gscale);
  cuda::check_launch("optim_adamw_group");
}

// A whole parameter list in one launch per (param, grad) dtype pair present, not one per parameter.
// Every quadruple is checked before any is queued.
std::vector<Tensor> adamw_group_cuda(const Inputs& in, const Attrs& attrs) {
  check_adamw_group(in);
  KX_CHECK(in.size() / 4 < (size_t)INT32_MAX, Arg, "optim_adamw_group: too many parameters");
  const AdamWConfig cfg = adamw_config(attrs);
  std::vector<size_t> by_pair[kNumDTypes][kNumDTypes];
  for (size_t i = 0; i < in.size(); i += 4) by_pair[(int)in[i].dtype][(int)in[i + 1].dtype].push_back(i);
  for (auto& row : by_pair) {
    for (const std::vector<size_t>& at : row) {
      if (at.empty()) continue;
      KX_DISPATCH_FLOAT(in[at[0]].dtype, {
        using P = scalar_t;
        KX_DISPATCH_FLOAT(in[at[0] + 1].dtype, (adamw_list_launch<P, scalar_t>(in, at, cfg)));
      });
    }
  }
  return {};
}

template <bool kMomentum, bool kFirst, bool kNesterov, class P, class G>
void sgd_launch(const Tensor& param, const Tensor& grad, float* buf, const SgdConfig& c) {
  const int64_t n = param.numel();
  cuda::sgd_kernel<kMomentum, kFirst, kNesterov, P, G>
      <<<cuda::blocks_for(n, cuda::kThreads), cuda::kThreads, 0, cuda::stream(param)>>>(
          param.data<P>(), grad.data<G>(), buf, n, c.gscale, c.coef);
}

template <class P, class G> void sgd_run(const Tensor& param, const Tensor& grad, const Tensor& buf, const SgdConfig& c) {
  float* bp = buf.defined() ? buf.data<float>() : nullptr;
  if (c.coef.momentum == 0) sgd_launch<false, false, false, P, G>(param, grad, bp, c);
  else if (c.first && c.nesterov) sgd_launch<true, true, true, P, G>(param, grad, bp, c);
  else if (c.first) sgd_launch<true, true, false, P, G>(param, grad, bp, c);
  else if (c.nesterov) sgd_launch<true, false, true, P, G>(param, grad, bp, c);
  else sgd_launch<true, false, false, P, G>(param, grad, bp, c);
}

std::vector<Tensor> sgd_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor &param = in[0], &grad = in[1], &buf = in[2];
  check_state_like(grad, param, "optim_sgd", "grad", false);
  if (buf.defined()) check_state_like(buf, param, "optim_sgd", "momentum buffer", true);
  const SgdConfig c = sgd_config(attrs, buf);
  KX_DISPATCH_FLOAT(param.dtype, {
    using P = scalar_t;
    KX_DISPATCH_FLOAT(grad.dtype, (sgd_run<P, scalar_t>(param, grad, buf, c)));
  });
  cuda::check_launch("optim_sgd");
  return {};
}

// Every input's per-block partials side by side, then one fixed-order sum.
std::vector<Tensor> global_norm_cuda(const Inputs& in, const Attrs&) {
  int64_t parts = 0;
  for (const Tensor& x : in) {
    KX_CHECK(x.defined(), Arg, "optim_global_norm: missing input");
    parts += x.numel() > 0 ? cuda::optim_partial_blocks(x.numel()) : 0;
  }
  const Device device = in[0].device();
  cudaStream_t stream = cuda::stream(device.index);
  Tensor part = empty({parts * (int64_t)sizeof(double)}, DType::UInt8, device);
  double* p = reinterpret_cast<double*>(part.raw());
  for (const Tensor& x : in) {
    if (x.numel() == 0) continue;
    const unsigned blocks = cuda::optim_partial_blocks(x.numel());
    KX_DISPATCH_FLOAT(x.dtype, (cuda::sum_sq_partials_kernel<scalar_t>
                                <<<blocks, cuda::kThreads, 0, stream>>>(x.data<scalar_t>(), x.numel(), p)));
    p += blocks;
  }
  Tensor out = empty({}, DType::Float32, device);
  cuda::global_norm_finish_kernel<<<1, 1024, 0, stream>>>(reinterpret_cast<double*>(part.raw()), parts,
                                                         out.data<float>());
  cuda::check_launch("optim_global_norm");
  return {out};
}

std::vector<Tensor> clip_factor_cuda(const Inputs& in, const Attrs& attrs) {
  const ClipAttrs c = clip_attrs(attrs);
  const Tensor& norm = in[0];
  check_clip_norm(norm);
  Tensor out = empty({}, DType::Float32, norm.device());
  cudaStream_t stream = cuda::stream(norm.device().index);
  KX_DISPATCH_FLOAT(norm.dtype, (cuda::clip_factor_kernel<scalar_t><<<1, 1, 0, stream>>>(norm.data<scalar_t>(), c.max_norm, c.scale, out.data<float>())));
  cuda::check_launch("optim_clip_factor");
  return {out};
}

}  // namespace

KX_REGISTER_KERNEL(optim_tiger, CUDA, tiger_cuda);
KX_REGISTER_KERNEL(optim_tiger_group, CUDA, tiger_group_cuda);
KX_REGISTER_KERNEL(optim_lion, CUDA, lion_cuda);
KX_REGISTER_KERNEL(optim_adamw, CUDA, adamw_cuda);
KX_REGISTER_KERNEL(optim_adamw_group, CUDA, adamw_group_cuda);
KX_REGISTER_KERNEL(optim_sgd, CUDA, sgd_cuda);
KX_REGISTER_KERNEL(optim_global_norm, CUDA, global_norm_cuda);
KX_REGISTER_KERNEL(optim_clip_factor, CUDA, clip_factor_cuda);

}  // namespace kx
