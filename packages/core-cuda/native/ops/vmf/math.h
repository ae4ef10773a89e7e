// The math of one von Mises–Fisher draw (ALGORITHMS.md §5.2), written once for the CPU (vmf.cpp)
// and CUDA (vmf.cu) kernels: the inverse-CDF lookup of w, and Wood's (1994) rejection sampler of w
// with the Beta and Gamma variates it needs, all in double so that both devices take the same
// accept/reject decisions from the same Philox words.
#pragma once
#include <cmath>
#include <cstdint>

#include "kx/dtype.h"
#include "kx/math.h"
#include "kx/philox.h"

namespace kx {

// Counter word c3 of the per-draw Philox streams of Wood's sampler ('VMFW'): draw e reads the
// blocks {lo32(e), hi32(e), j, kVmfWoodStream}, j = 0, 1, 2, … as long as its rejection loop runs,
// so a draw's words depend only on (seed, e), never on how many words other draws used.
constexpr uint32_t kVmfWoodStream = 0x564D4657u;

// A sequential reader of one draw's Philox stream: uniforms in (0, 1) and standard normals.
struct VmfStream {
  uint64_t seed;
  uint64_t e;
  uint32_t block;
  int next;
  Philox4 words;
  bool has_spare;
  double spare;

  KX_HD VmfStream(uint64_t seed_, uint64_t e_)
      : seed(seed_), e(e_), block(0), next(4), words{{0u, 0u, 0u, 0u}}, has_spare(false), spare(0.0) {}

  KX_HD uint32_t word() {
    if (next == 4) {
      words = philox_stream_block(seed, e, block, kVmfWoodStream);
      ++block;
      next = 0;
    }
    return words.v[next++];
  }

  // (w + 1/2) / 2^32: never 0 or 1, so its logarithm is finite.
  KX_HD double uniform() { return ((double)word() + 0.5) * 2.3283064365386963e-10; }

  // Box–Muller: two uniforms give two normals; the second is kept for the next call.
  KX_HD double normal() {
    if (has_spare) {
      has_spare = false;
      return spare;
    }
    const double r = sqrt(-2.0 * log(uniform()));
    const double t = 6.283185307179586 * uniform();
    spare = r * sin(t);
    has_spare = true;
    return r * cos(t);
  }

  // Gamma(a, 1) by Marsaglia & Tsang (2000), "A simple method for generating gamma variables";
  // a < 1 through Gamma(a) = Gamma(a + 1) · U^(1/a).
  KX_HD double gamma(double a) {
    double boost = 1.0;
    if (a < 1.0) {
      boost = pow(uniform(), 1.0 / a);
      a += 1.0;
    }
    const double dd = a - 1.0 / 3.0;
    const double c = 1.0 / sqrt(9.0 * dd);
    for (;;) {
      double x, v;
      do {
        x = normal();
        v = 1.0 + c * x;
      } while (v <= 0.0);
      v = v * v * v;
      const double u = uniform();
      if (log(u) < 0.5 * x * x + dd - dd * v + dd * log(v)) return boost * dd * v;
    }
  }
};

// Wood's constants for S^{d-1} (m = d - 1), computed once per call on the host.
struct VmfWoodParams {
  double kappa;
  double m;   // d - 1
  double b;   // m / (sqrt(4κ² + m²) + 2κ)
  double x0;  // (1 - b) / (1 + b)
  double c;   // κ x0 + m ln(1 - x0²)
  uint64_t seed;
  uint64_t offset;
};

inline VmfWoodParams vmf_wood_params(double d, double kappa, uint64_t seed, uint64_t offset) {
  VmfWoodParams p;
  p.kappa = kappa;
  p.m = d - 1.0;
  p.b = p.m / (std::sqrt(4.0 * kappa * kappa + p.m * p.m) + 2.0 * kappa);
  p.x0 = (1.0 - p.b) / (1.0 + p.b);
  // 1 - x0² = 4b / (1 + b)², without the cancellation of 1 - x0² when κ is large and x0 near 1
  p.c = kappa * p.x0 + p.m * std::log(4.0 * p.b / ((1.0 + p.b) * (1.0 + p.b)));
  p.seed = seed;
  p.offset = offset;
  return p;
}

// One w of Wood's sampler for draw e: z ~ Beta(m/2, m/2) as X / (X + Y) of two Gamma(m/2)
// variates, w = (1 - (1+b)z) / (1 - (1-b)z), accepted when κw + m ln(1 - x0 w) - c >= ln u.
KX_HD double vmf_wood_draw(const VmfWoodParams& p, uint64_t e) {
  VmfStream s(p.seed, e);
  const double a = 0.5 * p.m;
  for (;;) {
    const double g1 = s.gamma(a);
    const double g2 = s.gamma(a);
    const double z = g1 / (g1 + g2);
    const double w = (1.0 - (1.0 + p.b) * z) / (1.0 - (1.0 - p.b) * z);
    const double u = s.uniform();
    if (p.kappa * w + p.m * log(1.0 - p.x0 * w) - p.c >= log(u)) return w;
  }
}

// The grid point k of the inverse-CDF table: x_k = -1 + (k + 1) δ (the post's grid, which starts
// one step above -1 and stops below 1).
KX_HD double vmf_grid_point(int64_t k, double delta) { return -1.0 + (double)(k + 1) * delta; }

// np.interp(u, cdf, x) on the table: the first k with cdf[k] > u by bisection, then the line
// between grid points k-1 and k; u below cdf[0] gives x_0 (the post's edge rule).
KX_HD double vmf_icdf_lookup(const float* cdf, int64_t n, double delta, float u) {
  int64_t lo = 0, hi = n;  // cdf[lo-1] <= u < cdf[hi]
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (cdf[mid] > u) hi = mid;
    else lo = mid + 1;
  }
  if (lo == 0) return vmf_grid_point(0, delta);
  if (lo == n) return vmf_grid_point(n - 1, delta);
  const double c0 = cdf[lo - 1], c1 = cdf[lo];
  return vmf_grid_point(lo - 1, delta) + ((double)u - c0) / (c1 - c0) * delta;
}

// ---- z = wμ + sqrt(1 − w²)ν of one row, ν = (ε − ⟨ε, μ⟩μ) / ‖ε − ⟨ε, μ⟩μ‖ ------------------------
// Dot products accumulate in double; a row whose ε is parallel to μ (zero tangent) gets ν = 0.

struct VmfTangent {
  double a;    // ⟨ε, μ⟩
  double inv;  // 1 / ‖ε − aμ‖ (0 for a zero tangent)
};

template <class T>
KX_HD VmfTangent vmf_tangent(const T* mu, const T* eps, int64_t d) {
  double a = 0.0;
  for (int64_t k = 0; k < d; ++k) a += (double)to_float(mu[k]) * (double)to_float(eps[k]);
  double r2 = 0.0;
  for (int64_t k = 0; k < d; ++k) {
    const double t = (double)to_float(eps[k]) - a * (double)to_float(mu[k]);
    r2 += t * t;
  }
  return {a, r2 > 0.0 ? 1.0 / sqrt(r2) : 0.0};
}

KX_HD double vmf_tangent_scale(float w) {
  const double s = 1.0 - (double)w * (double)w;
  return s > 0.0 ? sqrt(s) : 0.0;
}

template <class T>
KX_HD void vmf_compose_row(const T* mu, T w_in, const T* eps, T* z, int64_t d) {
  const float w = to_float(w_in);
  const VmfTangent tg = vmf_tangent(mu, eps, d);
  const double s = vmf_tangent_scale(w) * tg.inv;
  for (int64_t k = 0; k < d; ++k) {
    const double m = to_float(mu[k]);
    z[k] = from_float<T>((float)((double)w * m + s * ((double)to_float(eps[k]) - tg.a * m)));
  }
}

// The row's gradients from g = dL/dz, with ν = t/r, s = sqrt(1 − w²), h = (s/r)(g − ⟨g, ν⟩ν):
// dμ = w g − a h − ⟨μ, h⟩ε, dε = h − ⟨μ, h⟩μ, dw = ⟨g, μ⟩ − (w/s)⟨g, ν⟩ (0 where s = 0).
template <class T>
KX_HD void vmf_compose_backward_row(const T* mu, T w_in, const T* eps, const T* g, T* dmu, T* dw, T* deps, int64_t d) {
  const float w = to_float(w_in);
  const VmfTangent tg = vmf_tangent(mu, eps, d);
  const double s = vmf_tangent_scale(w);
  double gn = 0.0, gm = 0.0;
  for (int64_t k = 0; k < d; ++k) {
    const double m = to_float(mu[k]);
    const double nu = ((double)to_float(eps[k]) - tg.a * m) * tg.inv;
    gn += (double)to_float(g[k]) * nu;
    gm += (double)to_float(g[k]) * m;
  }
  // ⟨μ, h⟩ = (s/r)(⟨μ, g⟩ − ⟨g, ν⟩⟨μ, ν⟩)
  double mn = 0.0;
  for (int64_t k = 0; k < d; ++k) mn += (double)to_float(mu[k]) * ((double)to_float(eps[k]) - tg.a * (double)to_float(mu[k])) * tg.inv;
  const double c = s * tg.inv;
  const double mh = c * (gm - gn * mn);
  for (int64_t k = 0; k < d; ++k) {
    const double m = to_float(mu[k]);
    const double e = to_float(eps[k]);
    const double h = c * ((double)to_float(g[k]) - gn * (e - tg.a * m) * tg.inv);
    dmu[k] = from_float<T>((float)((double)w * (double)to_float(g[k]) - tg.a * h - mh * e));
    deps[k] = from_float<T>((float)(h - mh * m));
  }
  *dw = from_float<T>((float)(s > 0.0 ? gm - (double)w / s * gn : 0.0));
}

}  // namespace kx
