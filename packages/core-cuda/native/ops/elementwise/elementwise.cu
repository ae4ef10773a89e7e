// Elementwise ops on CUDA: add/sub/mul/div and where with NumPy broadcasting, broadcast_to, the
// unary functions with their fused backward, and bias + GELU. The per-element math is
// ops/elementwise/math.h's, the validation ops/elementwise/plan.h's (both shared with the CPU). A
// broadcast that coalesces to one run (equal shapes, a scalar operand) takes 16-byte vector loads;
// any other computes input offsets from the coalesced index (kx/broadcast.h), in 32-bit arithmetic
// when it fits: once per 16-byte vector when the innermost run allows (a bias row, a per-row
// scale), else once per element.
#include <limits>

#include "cuda/column_sums.cuh"
#include "cuda/row_group.cuh"
#include "cuda/runtime.h"
#include "cuda/vec.cuh"
#include "kx/broadcast.h"
#include "ops/elementwise/plan.h"

namespace kx {
namespace {

using cuda::kPackOf;
using cuda::kThreads;
using cuda::load_pack;
using cuda::store_pack;
using cuda::Vec16;

// (with room for the largest grid stride, so a loop's last i += stride does not overflow)
bool fits_int32(int64_t n) { return n <= std::numeric_limits<int32_t>::max() - (int64_t(1) << 20) * kThreads; }

// ---- binary -------------------------------------------------------------------------------------

// One run: a_step / b_step are 1 for a full operand and 0 for a broadcast scalar.
template <class Op, class T>
__global__ void binary_run_kernel(const T* __restrict__ a, int a_step, const T* __restrict__ b, int b_step,
                                  T* __restrict__ y, int64_t n, int64_t nvec) {
  constexpr int V = Vec16<T>::N;
  const int64_t stride = cuda::grid_stride();
  const float a0 = to_float(a[0]), b0 = to_float(b[0]);
  for (int64_t i = cuda::thread_index(); i < nvec; i += stride) {
    float va[V], vb[V];
    if (a_step) cuda::load_vec(a, i, va);
    if (b_step) cuda::load_vec(b, i, vb);
#pragma unroll
    for (int k = 0; k < V; ++k) va[k] = Op::apply(a_step ? va[k] : a0, b_step ? vb[k] : b0);
    cuda::store_vec(y, i, va);
  }
  for (int64_t i = nvec * V + cuda::thread_index(); i < n; i += stride)
    y[i] = from_float<T>(Op::apply(to_float(a[i * a_step]), to_float(b[i * b_step])));
}

// A broadcast whose innermost coalesced dim is a multiple of the vector width (e.g. [N, D] + [D]):
// each thread takes one vector of output; its inputs either hold that run (inner stride 1, and then
// their offset is a multiple of the width too) or repeat one element along it (inner stride 0).
template <class Op, class T, class I>
__global__ void binary_vec_index_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y, I nvec,
                                        BroadcastIndex<2> idx) {
  constexpr int V = Vec16<T>::N;
  const bool a_full = idx.strides[idx.rank - 1][0] != 0, b_full = idx.strides[idx.rank - 1][1] != 0;
  const I stride = (I)(gridDim.x * blockDim.x);
  for (I i = (I)(blockIdx.x * blockDim.x + threadIdx.x); i < nvec; i += stride) {
    I off[2];
    idx.offsets((I)(i * V), off);
    float va[V], vb[V];
    if (a_full) cuda::load_vec(a, off[0] / V, va);
    if (b_full) cuda::load_vec(b, off[1] / V, vb);
    const float a0 = a_full ? 0.0f : to_float(a[off[0]]), b0 = b_full ? 0.0f : to_float(b[off[1]]);
#pragma unroll
    for (int k = 0; k < V; ++k) va[k] = Op::apply(a_full ? va[k] : a0, b_full ? vb[k] : b0);
    cuda::store_vec(y, i, va);
  }
}

template <class Op, class T, class I>
__global__ void binary_index_kernel(const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y, I n,
                                    BroadcastIndex<2> idx) {
  const I stride = (I)(gridDim.x * blockDim.x);
  for (I i = (I)(blockIdx.x * blockDim.x + threadIdx.x); i < n; i += stride) {
    I off[2];
    idx.offsets(i, off);
    y[i] = from_float<T>(Op::apply(to_float(a[off[0]]), to_float(b[off[1]])));
  }
}

template <class Op>
std::vector<Tensor> binary_cuda(const char* name, const Inputs& in) {
  const Tensor& a = in[0];
  const Tensor& b = in[1];
  const Shape shape = binary_out_shape(name, a, b);
  Tensor y = empty(shape, a.dtype, a.device());
  const int64_t n = y.numel();
  if (n == 0) return {y};
  const BroadcastIndex<2> idx = broadcast_index<2>(shape, {&a.shape, &b.shape}, name);
  cudaStream_t stream = cuda::stream(y);
  KX_DISPATCH_FLOAT(a.dtype, {
    const scalar_t* pa = a.data<scalar_t>();
    const scalar_t* pb = b.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
    if (idx.contiguous()) {
      const int64_t nvec = cuda::vec_count<scalar_t>(n, pa, pb, py);
      const unsigned grid = cuda::blocks_for(nvec + (n - nvec * Vec16<scalar_t>::N), kThreads);
      binary_run_kernel<Op><<<grid, kThreads, 0, stream>>>(pa, (int)idx.strides[0][0], pb, (int)idx.strides[0][1], py,
                                                           n, nvec);
    } else if (idx.dims[idx.rank - 1] % Vec16<scalar_t>::N == 0 && cuda::vec_count<scalar_t>(n, pa, pb, py) > 0) {
      const int64_t nvec = n / Vec16<scalar_t>::N;
      const unsigned grid = cuda::blocks_for(nvec, kThreads);
      if (fits_int32(n))
        binary_vec_index_kernel<Op, scalar_t, int32_t><<<grid, kThreads, 0, stream>>>(pa, pb, py, (int32_t)nvec, idx);
      else
        binary_vec_index_kernel<Op, scalar_t, int64_t><<<grid, kThreads, 0, stream>>>(pa, pb, py, nvec, idx);
    } else if (fits_int32(n)) {
      binary_index_kernel<Op, scalar_t, int32_t><<<cuda::blocks_for(n, kThreads), kThreads, 0, stream>>>(
          pa, pb, py, (int32_t)n, idx);
    } else {
      binary_index_kernel<Op, scalar_t, int64_t><<<cuda::blocks_for(n, kThreads), kThreads, 0, stream>>>(
          pa, pb, py, n, idx);
    }
  });
  cuda::check_launch(name);
  return {y};
}

std::vector<Tensor> add_cuda(const Inputs& in, const Attrs&) { return binary_cuda<AddOp>("add", in); }
std::vector<Tensor> sub_cuda(const Inputs& in, const Attrs&) { return binary_cuda<SubOp>("sub", in); }
std::vector<Tensor> mul_cuda(const Inputs& in, const Attrs&) { return binary_cuda<MulOp>("mul", in); }
std::vector<Tensor> div_cuda(const Inputs& in, const Attrs&) { return binary_cuda<DivOp>("div", in); }

// ---- where and broadcast_to: selects and copies move storage, no widening ----------------------

template <class T, class I>
__global__ void where_kernel(const uint8_t* __restrict__ c, const T* __restrict__ a, const T* __restrict__ b,
                             T* __restrict__ y, I n, BroadcastIndex<3> idx) {
  const I stride = (I)(gridDim.x * blockDim.x);
  for (I i = (I)(blockIdx.x * blockDim.x + threadIdx.x); i < n; i += stride) {
    I off[3];
    idx.offsets(i, off);
    y[i] = c[off[0]] ? a[off[1]] : b[off[2]];
  }
}

std::vector<Tensor> where_cuda(const Inputs& in, const Attrs&) {
  const Tensor& c = in[0];
  const Tensor& a = in[1];
  const Tensor& b = in[2];
  const Shape shape = where_out_shape(c, a, b);
  Tensor y = empty(shape, a.dtype, a.device());
  const int64_t n = y.numel();
  if (n == 0) return {y};
  const BroadcastIndex<3> idx = broadcast_index<3>(shape, {&c.shape, &a.shape, &b.shape}, "where");
  cudaStream_t stream = cuda::stream(y);
  const unsigned grid = cuda::blocks_for(n, kThreads);
  KX_DISPATCH_FLOAT(a.dtype, {
    const uint8_t* pc = c.data<uint8_t>();
    const scalar_t* pa = a.data<scalar_t>();
    const scalar_t* pb = b.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
    if (fits_int32(n)) where_kernel<scalar_t, int32_t><<<grid, kThreads, 0, stream>>>(pc, pa, pb, py, (int32_t)n, idx);
    else where_kernel<scalar_t, int64_t><<<grid, kThreads, 0, stream>>>(pc, pa, pb, py, n, idx);
  });
  cuda::check_launch("where");
  return {y};
}

template <class T, class I>
__global__ void broadcast_kernel(const T* __restrict__ x, T* __restrict__ y, I n, BroadcastIndex<1> idx) {
  const I stride = (I)(gridDim.x * blockDim.x);
  for (I i = (I)(blockIdx.x * blockDim.x + threadIdx.x); i < n; i += stride) {
    I off[1];
    idx.offsets(i, off);
    y[i] = x[off[0]];
  }
}

template <class T>
void broadcast_copy(const Tensor& x, Tensor& y, const BroadcastIndex<1>& idx) {
  const int64_t n = y.numel();
  const T* px = static_cast<const T*>(x.raw());
  T* py = static_cast<T*>(y.raw());
  const unsigned grid = cuda::blocks_for(n, kThreads);
  cudaStream_t stream = cuda::stream(y);
  if (fits_int32(n)) broadcast_kernel<T, int32_t><<<grid, kThreads, 0, stream>>>(px, py, (int32_t)n, idx);
  else broadcast_kernel<T, int64_t><<<grid, kThreads, 0, stream>>>(px, py, n, idx);
}

std::vector<Tensor> broadcast_to_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor& x = in[0];
  const Shape shape = broadcast_to_shape(x, attrs);
  Tensor y = empty(shape, x.dtype, x.device());
  if (y.numel() == 0) return {y};
  const BroadcastIndex<1> idx = broadcast_index<1>(shape, {&x.shape}, "broadcast_to");
  if (idx.contiguous() && idx.strides[0][0] == 1) {  // no broadcast axis: a plain copy
    cuda::check(cudaMemcpyAsync(y.raw(), x.raw(), y.nbytes(), cudaMemcpyDeviceToDevice, cuda::stream(y)),
                "broadcast_to");
    return {y};
  }
  switch (dtype_size(x.dtype)) {
    case 1: broadcast_copy<uint8_t>(x, y, idx); break;
    case 2: broadcast_copy<uint16_t>(x, y, idx); break;
    case 4: broadcast_copy<uint32_t>(x, y, idx); break;
    default: fail(Code::Internal, "broadcast_to: unexpected element size");
  }
  cuda::check_launch("broadcast_to");
  return {y};
}

// ---- unary --------------------------------------------------------------------------------------

template <UnaryFn F, class T>
__global__ void unary_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t n, int64_t nvec, float p) {
  constexpr int V = Vec16<T>::N;
  const int64_t stride = cuda::grid_stride();
  for (int64_t i = cuda::thread_index(); i < nvec; i += stride) {
    float v[V];
    cuda::load_vec(x, i, v);
#pragma unroll
    for (int k = 0; k < V; ++k) v[k] = Unary<F>::f(v[k], p);
    cuda::store_vec(y, i, v);
  }
  for (int64_t i = nvec * V + cuda::thread_index(); i < n; i += stride)
    y[i] = from_float<T>(Unary<F>::f(to_float(x[i]), p));
}

template <UnaryFn F, class T>
__global__ void unary_backward_kernel(const T* __restrict__ x, const T* __restrict__ y, const T* __restrict__ dy,
                                      T* __restrict__ dx, int64_t n, int64_t nvec, float p) {
  constexpr int V = Vec16<T>::N;
  const int64_t stride = cuda::grid_stride();
  for (int64_t i = cuda::thread_index(); i < nvec; i += stride) {
    float vx[V], vy[V], vd[V];
    cuda::load_vec(x, i, vx);
    cuda::load_vec(y, i, vy);
    cuda::load_vec(dy, i, vd);
#pragma unroll
    for (int k = 0; k < V; ++k) vd[k] *= Unary<F>::df(vx[k], vy[k], p);
    cuda::store_vec(dx, i, vd);
  }
  for (int64_t i = nvec * V + cuda::thread_index(); i < n; i += stride)
    dx[i] = from_float<T>(to_float(dy[i]) * Unary<F>::df(to_float(x[i]), to_float(y[i]), p));
}

std::vector<Tensor> unary_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor& x = in[0];
  const UnaryFn fn = unary_fn("unary", attrs);
  const float p = (float)attrs.num("exponent", 1.0);
  Tensor y = empty(x.shape, x.dtype, x.device());
  const int64_t n = x.numel();
  if (n == 0) return {y};
  cudaStream_t stream = cuda::stream(y);
  KX_DISPATCH_FLOAT(x.dtype, {
    const scalar_t* px = x.data<scalar_t>();
    scalar_t* py = y.data<scalar_t>();
    const int64_t nvec = cuda::vec_count<scalar_t>(n, px, py);
    const unsigned grid = cuda::blocks_for(nvec + (n - nvec * Vec16<scalar_t>::N), kThreads);
    KX_DISPATCH_UNARY(fn, unary_kernel<kFn><<<grid, kThreads, 0, stream>>>(px, py, n, nvec, p));
  });
  cuda::check_launch("unary");
  return {y};
}

std::vector<Tensor> unary_backward_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor& x = in[0];
  const Tensor& y = in[1];
  const Tensor& dy = in[2];
  check_unary_backward(x, y, dy);
  const UnaryFn fn = unary_fn("unary_backward", attrs);
  const float p = (float)attrs.num("exponent", 1.0);
  Tensor dx = empty(x.shape, x.dtype, x.device());
  const int64_t n = x.numel();
  if (n == 0) return {dx};
  cudaStream_t stream = cuda::stream(dx);
  KX_DISPATCH_FLOAT(x.dtype, {
    const scalar_t* px = x.data<scalar_t>();
    const scalar_t* py = y.data<scalar_t>();
    const scalar_t* pd = dy.data<scalar_t>();
    scalar_t* pdx = dx.data<scalar_t>();
    const int64_t nvec = cuda::vec_count<scalar_t>(n, px, py, pd, pdx);
    const unsigned grid = cuda::blocks_for(nvec + (n - nvec * Vec16<scalar_t>::N), kThreads);
    KX_DISPATCH_UNARY(fn, unary_backward_kernel<kFn><<<grid, kThreads, 0, stream>>>(px, py, pd, pdx, n, nvec, p));
  });
  cuda::check_launch("unary_backward");
  return {dx};
}

// ---- bias + GELU --------------------------------------------------------------------------------
// The fused tier's y = gelu(x + bias) over rows of x in packs; the backward's dbias is a column sum
// over rows (cuda/column_sums.cuh), deterministic without float atomics.

template <bool kTanh, bool kVec, class T>
__global__ void bias_gelu_kernel(const T* __restrict__ x, const T* __restrict__ bias, T* __restrict__ y, int64_t n,
                                 int64_t d) {
  constexpr int P = kPackOf<T, kVec>;
  for (int64_t i = cuda::thread_index() * P; i < n; i += cuda::grid_stride() * P) {
    float xv[P], bv[P];
    load_pack<T, kVec>(x, i, xv);
    load_pack<T, kVec>(bias, i % d, bv);
#pragma unroll
    for (int k = 0; k < P; ++k) xv[k] = bias_gelu<kTanh>(xv[k], bv[k]);
    store_pack<T, kVec>(y, i, xv);
  }
}

// dx = dy·gelu'(x + bias) at one pack of a row, also summed into dbias.
template <bool kTanh, bool kVec, class T>
struct BiasGeluGradTerm {
  static constexpr int P = kPackOf<T, kVec>;
  const T *dy, *x, *bias;
  T* dx;
  int64_t d;
  __device__ void operator()(int64_t r, int64_t c, float (&acc)[1][P]) const {
    float dyv[P], xv[P], bv[P];
    load_pack<T, kVec>(dy + r * d, c, dyv);
    load_pack<T, kVec>(x + r * d, c, xv);
    load_pack<T, kVec>(bias, c, bv);
#pragma unroll
    for (int k = 0; k < P; ++k) {
      dyv[k] = bias_gelu_grad<kTanh>(dyv[k], xv[k], bv[k]);
      acc[0][k] += dyv[k];
    }
    store_pack<T, kVec>(dx + r * d, c, dyv);
  }
};

// Calls fn(tanh, vec) with both as std::bool_constant.
template <class Fn>
void with_gelu_layout(bool tanh, bool vec, Fn&& fn) {
  cuda::bool_dispatch(tanh, [&](auto t) { cuda::bool_dispatch(vec, [&](auto v) { fn(t, v); }); });
}

std::vector<Tensor> bias_gelu_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor &x = in[0], &bias = in[1];
  const BiasGeluPlan p = bias_gelu_plan(nullptr, x, bias, attrs, "bias_gelu");
  Tensor y = empty(x.shape, x.dtype, x.device());
  const int64_t n = x.numel();
  if (n == 0) return {y};
  cudaStream_t stream = cuda::stream(x);
  KX_DISPATCH_FLOAT(x.dtype, {
    using T = scalar_t;
    const T *px = x.data<T>(), *pb = bias.data<T>();
    T* py = y.data<T>();
    with_gelu_layout(p.tanh, cuda::rows_vectorise<T>(p.rows.d, px, pb, py), [&](auto tanh, auto vec) {
      constexpr int P = kPackOf<T, decltype(vec)::value>;
      bias_gelu_kernel<decltype(tanh)::value, decltype(vec)::value, T>
          <<<cuda::blocks_for(n / P, cuda::kThreads), cuda::kThreads, 0, stream>>>(px, pb, py, n, p.rows.d);
    });
  });
  cuda::check_launch("bias_gelu");
  return {y};
}

std::vector<Tensor> bias_gelu_backward_cuda(const Inputs& in, const Attrs& attrs) {
  const Tensor &dy = in[0], &x = in[1], &bias = in[2];
  const BiasGeluPlan p = bias_gelu_plan(&dy, x, bias, attrs, "bias_gelu_backward");
  const int64_t rows = p.rows.rows, d = p.rows.d;
  Tensor dx = empty(x.shape, x.dtype, x.device());
  Tensor dbias = empty({d}, x.dtype, x.device());
  if (d == 0) return {dx, dbias};
  cudaStream_t stream = cuda::stream(x);
  KX_DISPATCH_FLOAT(x.dtype, {
    using T = scalar_t;
    const T *pdy = dy.data<T>(), *px = x.data<T>(), *pb = bias.data<T>();
    T* pdx = dx.data<T>();
    with_gelu_layout(p.tanh, cuda::rows_vectorise<T>(d, pdy, px, pb, pdx), [&](auto tanh, auto vec) {
      constexpr bool kTanh = decltype(tanh)::value, kVec = decltype(vec)::value;
      const BiasGeluGradTerm<kTanh, kVec, T> term{pdy, px, pb, pdx, d};
      cuda::column_sums<T, kVec, 1>(term, rows, d, dbias, nullptr, stream, "bias_gelu_backward");
    });
  });
  return {dx, dbias};
}

}  // namespace

KX_REGISTER_KERNEL(add, CUDA, add_cuda);
KX_REGISTER_KERNEL(sub, CUDA, sub_cuda);
KX_REGISTER_KERNEL(mul, CUDA, mul_cuda);
KX_REGISTER_KERNEL(div, CUDA, div_cuda);
KX_REGISTER_KERNEL(where, CUDA, where_cuda);
KX_REGISTER_KERNEL(broadcast_to, CUDA, broadcast_to_cuda);
KX_REGISTER_KERNEL(unary, CUDA, unary_cuda);
KX_REGISTER_KERNEL(unary_backward, CUDA, unary_backward_cuda);
KX_REGISTER_KERNEL(bias_gelu, CUDA, bias_gelu_cuda);
KX_REGISTER_KERNEL(bias_gelu_backward, CUDA, bias_gelu_backward_cuda);

}  // namespace kx
