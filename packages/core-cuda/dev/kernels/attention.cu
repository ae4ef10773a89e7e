// Kernel lab: flash-style attention forward and backward, the kernels of
// native/ops/attention/kernels.cuh (what the addon's attention / attention_backward run), validated
// against a CPU reference built from the same row math (ops/attention/math.h) and timed.
//
//   cd packages/core-cuda
//   nvcc -std=c++17 -O3 --expt-relaxed-constexpr -arch=sm_90 -I native/include -I native \
//        dev/kernels/attention.cu -o /tmp/attention-lab && /tmp/attention-lab
//
// Validation: shapes with edge tiles, Tq != Tk (causal, bottom-right aligned), head dims that are
// not multiples of 64 and wider than 64 (D != Dv), a padding mask with a fully masked batch (rows
// with no visible key), a broadcast T5-style bias [1, H, Tq, Tk] (dbias summed over the batch) and
// a full bias [B, H, Tq, Tk]; float32, float16 and bfloat16. Timing: B=16, H=12, T=128 and 512,
// D=64, float32 and bfloat16, forward and forward+backward, in ms and TFLOP/s (FLOPs by the
// FlashAttention convention: 4 B H Tq Tk D forward, 2.5x that backward; causal halves them).
// Versions: the SIMT kernels, and where they take the call the tensor-core ones ("mma": float16 /
// bfloat16 at D = Dv = 64 or 128), which the addon then runs.
// Each result is also one `RESULT {json}` line for scripts; exit status 1 when a validation fails.
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "lab.cuh"
#include "ops/attention/kernels.cuh"
#include "ops/attention/math.h"

using kx::AttnShape;
using kx::Bcast;
namespace flash = kx::cuda::flash;

namespace {

enum class BiasKind { None, T5, Full };  // T5: [1, H, Tq, Tk] (broadcast over the batch)

struct Case {
  const char* name;
  int64_t B, H, Tq, Tk, D, Dv;
  bool causal, mask;
  BiasKind bias;
};

AttnShape shape_of(const Case& c) {
  AttnShape s{};
  s.B = c.B;
  s.H = c.H;
  s.Tq = c.Tq;
  s.Tk = c.Tk;
  s.D = c.D;
  s.Dv = c.Dv;
  s.scale = 1.0f / std::sqrt((float)c.D);
  s.causal = c.causal;
  s.offset = c.Tk - c.Tq;
  if (c.mask) s.ms = Bcast{c.Tk, 0, 0, 1, false};  // a padding mask [B, 1, 1, Tk]
  if (c.bias == BiasKind::T5) s.bs = Bcast{0, c.Tq * c.Tk, c.Tk, 1, c.B == 1};
  if (c.bias == BiasKind::Full) s.bs = Bcast{c.H * c.Tq * c.Tk, c.Tq * c.Tk, c.Tk, 1, true};
  return s;
}

int64_t bias_numel(const Case& c) {
  return c.bias == BiasKind::None ? 0 : (c.bias == BiasKind::T5 ? 1 : c.B) * c.H * c.Tq * c.Tk;
}

// Batch b's padding mask keeps its first Tk - 7 b keys; the last batch keeps none when B > 2.
std::vector<uint8_t> padding_mask(const Case& c) {
  std::vector<uint8_t> m((size_t)(c.B * c.Tk));
  for (int64_t b = 0; b < c.B; ++b) {
    const int64_t keep = (c.B > 2 && b == c.B - 1) ? 0 : c.Tk - 7 * b;
    for (int64_t j = 0; j < c.Tk; ++j) m[b * c.Tk + j] = j < keep;
  }
  return m;
}

// The CPU reference: float32 row math of ops/attention/math.h, each row's scores as one block.
struct Reference {
  const AttnShape& s;
  const std::vector<float>&q, &k, &v, &bias;
  const std::vector<uint8_t>& mask;

  void scores(int64_t b, int64_t h, int64_t i, float* row) const {
    const int64_t bh = b * s.H + h;
    for (int64_t j = 0; j < s.Tk; ++j) {
      double dot = 0;
      for (int64_t d = 0; d < s.D; ++d) dot += (double)q[(bh * s.Tq + i) * s.D + d] * k[(bh * s.Tk + j) * s.D + d];
      const bool keep = (mask.empty() || mask[s.ms.offset(b, h, i) + j * s.ms.sk]) &&
                        (!s.causal || kx::attn_causal_visible(i, j, s.offset));
      const float bij = bias.empty() ? 0.0f : bias[s.bs.offset(b, h, i) + j * s.bs.sk];
      row[j] = kx::attn_score(s.scale * (float)dot, bij, keep);
    }
  }

  void forward(std::vector<float>& out, std::vector<float>& lse) const {
    std::vector<float> row((size_t)s.Tk);
    for (int64_t bh = 0; bh < s.B * s.H; ++bh)
      for (int64_t i = 0; i < s.Tq; ++i) {
        scores(bh / s.H, bh % s.H, i, row.data());
        float m = -INFINITY, l = 0.0f;
        kx::attn_online_update(row.data(), s.Tk, &m, &l);
        const float inv = kx::attn_finish(m, l, &lse[bh * s.Tq + i]);
        for (int64_t e = 0; e < s.Dv; ++e) {
          double acc = 0;
          for (int64_t j = 0; j < s.Tk; ++j) acc += (double)row[j] * v[(bh * s.Tk + j) * s.Dv + e];
          out[(bh * s.Tq + i) * s.Dv + e] = (float)acc * inv;
        }
      }
  }

  // dq, dk, dv, dbias (bias-shaped) from the forward's out (as stored) and lse.
  void backward(const std::vector<float>& out, const std::vector<float>& lse, const std::vector<float>& dout,
                std::vector<float>& dq, std::vector<float>& dk, std::vector<float>& dv,
                std::vector<float>& dbias) const {
    std::vector<double> dq64(dq.size(), 0.0), dk64(dk.size(), 0.0), dv64(dv.size(), 0.0), db64(dbias.size(), 0.0);
    std::vector<float> row((size_t)s.Tk);
    for (int64_t bh = 0; bh < s.B * s.H; ++bh)
      for (int64_t i = 0; i < s.Tq; ++i) {
        const int64_t b = bh / s.H, h = bh % s.H, qi = bh * s.Tq + i;
        scores(b, h, i, row.data());
        double rowd = 0;
        for (int64_t e = 0; e < s.Dv; ++e) rowd += (double)dout[qi * s.Dv + e] * out[qi * s.Dv + e];
        if (lse[qi] == -INFINITY) continue;  // no visible key: no gradient
        for (int64_t j = 0; j < s.Tk; ++j) {
          const int64_t kj = bh * s.Tk + j;
          const float p = kx::attn_prob(row[j], lse[qi]);
          double dp = 0;
          for (int64_t e = 0; e < s.Dv; ++e) dp += (double)dout[qi * s.Dv + e] * v[kj * s.Dv + e];
          const float ds = kx::attn_dscore(p, (float)dp, (float)rowd);
          for (int64_t e = 0; e < s.Dv; ++e) dv64[kj * s.Dv + e] += (double)p * dout[qi * s.Dv + e];
          for (int64_t d = 0; d < s.D; ++d) {
            dq64[qi * s.D + d] += (double)s.scale * ds * k[kj * s.D + d];
            dk64[kj * s.D + d] += (double)s.scale * ds * q[qi * s.D + d];
          }
          if (!dbias.empty()) db64[s.bs.offset(b, h, i) + j * s.bs.sk] += ds;
        }
      }
    auto narrow = [](const std::vector<double>& src, std::vector<float>& dst) {
      for (size_t e = 0; e < src.size(); ++e) dst[e] = (float)src[e];
    };
    narrow(dq64, dq);
    narrow(dk64, dk);
    narrow(dv64, dv);
    narrow(db64, dbias);
  }
};

// Device copies of one problem's inputs and outputs in storage type T.
template <class T>
struct DeviceProblem {
  AttnShape s;
  lab::DeviceBuffer<T> q, k, v, bias, out, dout, dq, dk, dv, dbias;
  lab::DeviceBuffer<uint8_t> mask;
  lab::DeviceBuffer<float> lse, rowd, dbias_full;
  bool has_mask, has_bias;

  DeviceProblem(const Case& c, const std::vector<T>& hq, const std::vector<T>& hk, const std::vector<T>& hv,
                const std::vector<T>& hbias, const std::vector<uint8_t>& hmask, const std::vector<T>& hdout)
      : s(shape_of(c)),
        q(hq),
        k(hk),
        v(hv),
        bias(hbias),
        out((size_t)(c.B * c.H * c.Tq * c.Dv)),
        dout(hdout),
        dq(hq.size()),
        dk(hk.size()),
        dv(hv.size()),
        dbias(hbias.size()),
        mask(hmask),
        lse((size_t)(c.B * c.H * c.Tq)),
        rowd((size_t)(c.B * c.H * c.Tq)),
        dbias_full(c.bias == BiasKind::None || s.bs.full ? 0 : (size_t)(c.B * c.H * c.Tq * c.Tk)),
        has_mask(c.mask),
        has_bias(c.bias != BiasKind::None) {}

  flash::AttnArgs args() const {
    flash::AttnArgs p;
    p.s = s;
    p.q = q.ptr;
    p.k = k.ptr;
    p.v = v.ptr;
    p.dt = dtype();
    p.mask = has_mask ? mask.ptr : nullptr;
    p.bias = has_bias ? bias.ptr : nullptr;
    p.bias_dt = dtype();
    return p;
  }
  static kx::DType dtype() {
    if constexpr (std::is_same<T, float>::value) return kx::DType::Float32;
    else if constexpr (std::is_same<T, kx::half_t>::value) return kx::DType::Float16;
    else return kx::DType::BFloat16;
  }

  void forward(flash::Version version) { flash::launch_attention_forward(args(), out.ptr, lse.ptr, 0, version); }

  void backward(const Case& c, flash::Version version) {
    flash::BackwardArgs g{dout.ptr, dtype(), out.ptr, dtype(), lse.ptr, rowd.ptr, nullptr, nullptr};
    flash::DbiasReduce reduce{{{1, 1, 1, 1}}, dbias.ptr, dtype(), (int64_t)dbias.n};
    const bool broadcast = has_bias && !s.bs.full;
    if (has_bias && !broadcast) {
      LAB_CHECK(cudaMemsetAsync(dbias.ptr, 0, dbias.n * sizeof(T)));
      g.dbias = dbias.ptr;
    }
    if (broadcast) {
      LAB_CHECK(cudaMemsetAsync(dbias_full.ptr, 0, dbias_full.n * sizeof(float)));
      g.dbias_full = dbias_full.ptr;
      reduce.dims = {{c.bias == BiasKind::T5 ? 1 : c.B, c.H, c.Tq, c.Tk}};
    }
    flash::launch_attention_backward(args(), g, dq.ptr, dk.ptr, dv.ptr, broadcast ? &reduce : nullptr, 0, version);
  }
};

// The versions to compare: the SIMT kernels, and the launchers' best when that is another.
std::vector<std::pair<const char*, flash::Version>> versions(const flash::AttnArgs& args) {
  std::vector<std::pair<const char*, flash::Version>> v{{"simt", flash::Version::Simt}};
  if (flash::mma_fits(args)) v.push_back({"mma", flash::Version::Best});
  return v;
}

void print_validation(const char* version, const char* what, const char* dtype, const char* name, double err,
                      bool ok) {
  std::printf("  %-4s %-3s %-5s %-48s nmse %.2e %s\n", version, what, dtype, name, err, ok ? "ok" : "FAIL");
  std::printf("RESULT {\"kernel\":\"attention\",\"check\":\"validate\",\"version\":\"%s\",\"pass\":\"%s\","
              "\"dtype\":\"%s\",\"case\":\"%s\",\"nmse\":%.3e,\"ok\":%s}\n",
              version, what, dtype, name, err, ok ? "true" : "false");
}

template <class T>
bool validate(const Case& c) {
  const AttnShape s = shape_of(c);
  const auto q = lab::random_values<T>((size_t)(c.B * c.H * c.Tq * c.D), -1.0f, 1.0f, 1);
  const auto k = lab::random_values<T>((size_t)(c.B * c.H * c.Tk * c.D), -1.0f, 1.0f, 2);
  const auto v = lab::random_values<T>((size_t)(c.B * c.H * c.Tk * c.Dv), -1.0f, 1.0f, 3);
  const auto dout = lab::random_values<T>((size_t)(c.B * c.H * c.Tq * c.Dv), -1.0f, 1.0f, 4);
  const auto bias = lab::random_values<T>((size_t)bias_numel(c), -1.0f, 1.0f, 5);
  const std::vector<uint8_t> mask = c.mask ? padding_mask(c) : std::vector<uint8_t>();
  const auto qf = lab::widen(q), kf = lab::widen(k), vf = lab::widen(v), bf = lab::widen(bias), dof = lab::widen(dout);
  const Reference ref{s, qf, kf, vf, bf, mask};
  std::vector<float> out_ref((size_t)(c.B * c.H * c.Tq * c.Dv)), lse_ref((size_t)(c.B * c.H * c.Tq));
  ref.forward(out_ref, lse_ref);

  DeviceProblem<T> dev(c, q, k, v, bias, mask, dout);
  const double bound = lab::nmse_bound<T>();
  bool ok = true;
  for (const auto& [version, which] : versions(dev.args())) {
    dev.forward(which);
    LAB_CHECK(cudaDeviceSynchronize());
    const auto out = dev.out.download();
    const auto lse = dev.lse.download();
    // lse: -inf exactly where the reference has it, the rest by nmse.
    std::vector<float> lse_finite_ref, lse_finite;
    bool lse_pattern = true;
    for (size_t e = 0; e < lse.size(); ++e) {
      lse_pattern &= (lse[e] == -INFINITY) == (lse_ref[e] == -INFINITY);
      if (lse_ref[e] != -INFINITY && lse[e] != -INFINITY) {
        lse_finite_ref.push_back(lse_ref[e]);
        lse_finite.push_back(lse[e]);
      }
    }
    const double fwd_err = std::max(lab::nmse(out_ref, out), lab::nmse(lse_finite_ref, lse_finite));
    const bool fwd_ok = lse_pattern && fwd_err <= bound && std::isfinite(fwd_err);
    print_validation(version, "fwd", lab::type_name<T>(), c.name, fwd_err, fwd_ok);

    // The backward, fed this version's forward outputs.
    dev.backward(c, which);
    LAB_CHECK(cudaDeviceSynchronize());
    std::vector<float> dq_ref(q.size()), dk_ref(k.size()), dv_ref(v.size()), db_ref(bias.size());
    ref.backward(lab::widen(out), lse, dof, dq_ref, dk_ref, dv_ref, db_ref);
    double bwd_err = std::max({lab::nmse(dq_ref, dev.dq.download()), lab::nmse(dk_ref, dev.dk.download()),
                               lab::nmse(dv_ref, dev.dv.download())});
    if (!bias.empty()) bwd_err = std::max(bwd_err, lab::nmse(db_ref, dev.dbias.download()));
    const bool bwd_ok = bwd_err <= bound && std::isfinite(bwd_err);
    print_validation(version, "bwd", lab::type_name<T>(), c.name, bwd_err, bwd_ok);
    ok &= fwd_ok && bwd_ok;
  }
  return ok;
}

void print_time(const char* version, const char* what, const char* dtype, const char* name, float ms, double tflops) {
  std::printf("  %-4s %-7s %-5s %-20s %8.3f ms %6.1f TFLOP/s\n", version, what, dtype, name, ms, tflops);
  std::printf("RESULT {\"kernel\":\"attention\",\"check\":\"time\",\"version\":\"%s\",\"pass\":\"%s\","
              "\"dtype\":\"%s\",\"case\":\"%s\",\"ms\":%.4f,\"tflops\":%.2f}\n",
              version, what, dtype, name, ms, tflops);
}

template <class T>
void time_case(const Case& c) {
  const size_t nq = (size_t)(c.B * c.H * c.Tq * c.D), nk = (size_t)(c.B * c.H * c.Tk * c.D);
  const auto q = lab::random_values<T>(nq, -1.0f, 1.0f, 11);
  const auto k = lab::random_values<T>(nk, -1.0f, 1.0f, 12);
  const auto v = lab::random_values<T>(nk, -1.0f, 1.0f, 13);
  const auto dout = lab::random_values<T>(nq, -1.0f, 1.0f, 14);
  DeviceProblem<T> dev(c, q, k, v, {}, {}, dout);
  const double fwd_flops = 4.0 * c.B * c.H * c.Tq * c.Tk * c.D * (c.causal ? 0.5 : 1.0);
  auto tflops = [](double flops, float ms) { return flops / (ms * 1e-3) / 1e12; };
  const char* dtype = lab::type_name<T>();
  for (const auto& version : versions(dev.args())) {
    const float fwd_ms = lab::time_ms([&] { dev.forward(version.second); });
    print_time(version.first, "fwd", dtype, c.name, fwd_ms, tflops(fwd_flops, fwd_ms));
    const float both_ms = lab::time_ms([&] {
      dev.forward(version.second);
      dev.backward(c, version.second);
    });
    print_time(version.first, "fwd+bwd", dtype, c.name, both_ms, tflops(3.5 * fwd_flops, both_ms));
  }
}

}  // namespace

int main() {
  const Case checks[] = {
      {"B2 H3 T100 D64", 2, 3, 100, 100, 64, 64, false, false, BiasKind::None},
      {"causal B2 H2 Tq70 Tk130 D64", 2, 2, 70, 130, 64, 64, true, false, BiasKind::None},
      {"causal B1 H2 Tq130 Tk70 D32 (rows see no key)", 1, 2, 130, 70, 32, 32, true, false, BiasKind::None},
      {"mask+T5 bias B3 H2 T96 D80 Dv48", 3, 2, 96, 96, 80, 48, false, true, BiasKind::T5},
      {"mask+T5 bias B3 H2 T96 D64", 3, 2, 96, 96, 64, 64, false, true, BiasKind::T5},
      {"causal+full bias B2 H2 T130 D128", 2, 2, 130, 130, 128, 128, true, false, BiasKind::Full},
  };
  bool ok = true;
  std::printf("validation against the CPU reference (normalised MSE):\n");
  for (const Case& c : checks) {
    ok &= validate<float>(c);
    ok &= validate<kx::half_t>(c);
    ok &= validate<kx::bfloat16_t>(c);
  }
  std::printf("timing (median of 20):\n");
  const Case timed[] = {
      {"B16 H12 T128 D64", 16, 12, 128, 128, 64, 64, false, false, BiasKind::None},
      {"B16 H12 T512 D64", 16, 12, 512, 512, 64, 64, false, false, BiasKind::None},
  };
  for (const Case& c : timed) {
    time_case<float>(c);
    time_case<kx::bfloat16_t>(c);
  }
  std::printf("%s\n", ok ? "all validations passed" : "SOME VALIDATIONS FAILED");
  return ok ? 0 : 1;
}
