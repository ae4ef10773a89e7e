// eigh, svd and covariance on the CPU, in float64 from float32 input: LAPACK's dsyevd and dgesdd
// and BLAS's dgemm from OpenBLAS (Debian's libopenblas0, whose library carries LAPACK).
//
// OpenBLAS runs every call on its calling thread. Left to itself it hands a call's parts to its own
// workers, which then poll for ~0.1 s after every call beside kexue's pool and take the cores from
// it (why the products run on oneDNN on the pool: docs/DESIGN.md, Threading). native.ts loads the
// addon with OPENBLAS_NUM_THREADS=1, so that OpenBLAS starts no workers, unless the user set it; and
// the addon sets one thread as it loads (cpu/openblas.cpp), so that a user's setting starts workers
// that never get work. So eigh and svd use one thread, and the covariance's products run on kexue's
// pool, one tile of the output per task.
//
// Row-major storage read by column-major LAPACK is the transpose: a [m, n] row-major matrix is
// LAPACK's aᵀ [n, m] with leading dimension n. The functions below say where that matters.
//
// Signs: an eigenvector (a left singular vector) is fixed up to sign by the math; each is flipped
// so that its entry of largest magnitude (the first such, on a tie) is positive, and for svd the
// matching row of Vh with it, so that outputs are reproducible and comparable with other libraries'.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <utility>
#include <vector>

#include "cpu/thread_pool.h"
#include "kx/registry.h"
#include "ops/linalg/plan.h"

// The Fortran LAPACK/BLAS entry points (32-bit integers: Debian's LP64 build). The trailing size_t
// arguments are gfortran's hidden lengths of the character arguments.
extern "C" {
void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w, double* work,
             const int* lwork, int* iwork, const int* liwork, int* info, size_t jobz_len, size_t uplo_len);
void dgesdd_(const char* jobz, const int* m, const int* n, double* a, const int* lda, double* s, double* u,
             const int* ldu, double* vt, const int* ldvt, double* work, const int* lwork, int* iwork, int* info,
             size_t jobz_len);
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k, const double* alpha,
            const double* a, const int* lda, const double* b, const int* ldb, const double* beta, double* c,
            const int* ldc, size_t transa_len, size_t transb_len);
}

namespace kx {
namespace {

[[noreturn]] void fail_non_finite(const char* op, const char* role, const Shape& shape, int64_t flat, float value) {
  Shape at(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    at[d] = flat % shape[d];
    flat /= shape[d];
  }
  fail(Code::Arg, op, ": ", role, " has a non-finite entry (", value, " at ", shape_str(at), "); ", op,
       " needs finite input");
}

void check_finite(const char* op, const char* role, const Tensor& t) {
  const float* p = t.data<float>();
  for (int64_t i = 0, n = t.numel(); i < n; ++i) {
    if (!std::isfinite(p[i])) fail_non_finite(op, role, t.shape, i, p[i]);
  }
}

void check_info(const char* op, const char* routine, int info) {
  if (info == 0) return;
  KX_CHECK(info > 0, Internal, op, ": LAPACK ", routine, " rejected its argument ", -info, " (info = ", info, ")");
  fail(Code::Arg, op, ": LAPACK ", routine, " did not converge (info = ", info, ")");
}

// A workspace size from LAPACK's query (a count in a double).
int workspace_size(const char* op, double query) {
  KX_CHECK(query >= 1 && query <= INT_MAX, Arg, op, ": LAPACK's workspace (", query, " doubles) exceeds its 32-bit sizes");
  return (int)query;
}

// +1, or -1 when the entry of largest magnitude of v[0], v[stride], ... (the first on a tie) is
// negative.
double sign_of_largest(const double* v, int64_t n, int64_t stride) {
  double best = -1, value = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double x = v[i * stride];
    if (std::fabs(x) > best) {
      best = std::fabs(x);
      value = x;
    }
  }
  return value < 0 ? -1.0 : 1.0;
}

std::vector<Tensor> eigh_cpu(const Inputs& in, const Attrs&) { return eigh_host(in[0], eigh_plan(in[0])); }
std::vector<Tensor> svd_cpu(const Inputs& in, const Attrs&) { return svd_host(in[0], svd_plan(in[0])); }
std::vector<Tensor> covariance_cpu(const Inputs& in, const Attrs& attrs) {
  return covariance_host(in[0], covariance_plan(in[0], attrs));
}

}  // namespace

std::vector<Tensor> eigh_host(const Tensor& a, const EighPlan& p) {
  check_finite("eigh", "a", a);
  Tensor values = empty(p.values, DType::Float32, Device{});
  Tensor vectors = empty(p.vectors, DType::Float32, Device{});
  const int64_t n = p.m.rows;
  if (n == 0 || p.m.batch == 0) return {values, vectors};
  const int ni = (int)n;
  // a is symmetric, so LAPACK's aᵀ is a: its upper triangle ("U") is a's lower one, the triangle
  // torch.linalg.eigh reads.
  std::vector<double> z((size_t)(n * n)), w((size_t)n);
  int lwork = -1, liwork = -1, info = 0, iwork_query = 0;
  double work_query = 0;
  dsyevd_("V", "U", &ni, z.data(), &ni, w.data(), &work_query, &lwork, &iwork_query, &liwork, &info, 1, 1);
  check_info("eigh", "dsyevd", info);
  lwork = workspace_size("eigh", work_query);
  liwork = iwork_query;
  std::vector<double> work((size_t)lwork);
  std::vector<int> iwork((size_t)std::max(liwork, 1));
  const float* src = a.data<float>();
  float* vals = values.data<float>();
  float* vecs = vectors.data<float>();
  for (int64_t b = 0; b < p.m.batch; ++b) {
    std::copy(src + b * n * n, src + (b + 1) * n * n, z.begin());
    dsyevd_("V", "U", &ni, z.data(), &ni, w.data(), work.data(), &lwork, iwork.data(), &liwork, &info, 1, 1);
    check_info("eigh", "dsyevd", info);
    // Eigenvector j is z's column j, contiguous in column-major z: it becomes column j of vectors.
    float* out = vecs + b * n * n;
    for (int64_t j = 0; j < n; ++j) {
      const double* v = z.data() + j * n;
      const double sign = sign_of_largest(v, n, 1);
      vals[b * n + j] = (float)w[j];
      for (int64_t i = 0; i < n; ++i) out[i * n + j] = (float)(sign * v[i]);
    }
  }
  return {values, vectors};
}

std::vector<Tensor> svd_host(const Tensor& a, const SvdPlan& p) {
  check_finite("svd", "a", a);
  Tensor u = empty(p.u, DType::Float32, Device{});
  Tensor s = empty(p.s, DType::Float32, Device{});
  Tensor vh = empty(p.vh, DType::Float32, Device{});
  const int64_t m = p.m.rows, n = p.m.cols, k = p.k;
  if (k == 0 || p.m.batch == 0) return {u, s, vh};
  // LAPACK factors aᵀ [n, m] = U' S VT'. Then a = VT'ᵀ S U'ᵀ: U = VT'ᵀ, whose column-major [k, m]
  // storage is U's row-major [m, k], and Vh = U'ᵀ, whose column-major [n, k] storage is Vh's
  // row-major [k, n]. No transposes.
  const int rows = (int)n, cols = (int)m, ldu = (int)n, ldvt = (int)k;
  std::vector<double> at((size_t)(m * n)), sv((size_t)k), vh_buf((size_t)(n * k)), u_buf((size_t)(k * m));
  std::vector<int> iwork((size_t)(8 * k));
  int lwork = -1, info = 0;
  double work_query = 0;
  dgesdd_("S", &rows, &cols, at.data(), &rows, sv.data(), vh_buf.data(), &ldu, u_buf.data(), &ldvt, &work_query, &lwork,
          iwork.data(), &info, 1);
  check_info("svd", "dgesdd", info);
  lwork = workspace_size("svd", work_query);
  std::vector<double> work((size_t)lwork), sign((size_t)k);
  const float* src = a.data<float>();
  for (int64_t b = 0; b < p.m.batch; ++b) {
    std::copy(src + b * m * n, src + (b + 1) * m * n, at.begin());
    dgesdd_("S", &rows, &cols, at.data(), &rows, sv.data(), vh_buf.data(), &ldu, u_buf.data(), &ldvt, work.data(),
            &lwork, iwork.data(), &info, 1);
    check_info("svd", "dgesdd", info);
    for (int64_t j = 0; j < k; ++j) sign[j] = sign_of_largest(u_buf.data() + j, m, k);  // column j of U
    float* ub = u.data<float>() + b * m * k;
    float* sb = s.data<float>() + b * k;
    float* vb = vh.data<float>() + b * k * n;
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < k; ++j) ub[i * k + j] = (float)(sign[j] * u_buf[i * k + j]);
    }
    for (int64_t j = 0; j < k; ++j) {
      sb[j] = (float)sv[j];
      for (int64_t c = 0; c < n; ++c) vb[j * n + c] = (float)(sign[j] * vh_buf[j * n + c]);
    }
  }
  return {u, s, vh};
}

// The covariance in float64, in a fixed order whatever the thread count: the column sums run down
// the rows in order (a task per range of columns); then the rows, centred in float64, come in slabs
// of a size set by d alone, and each 128 × 128 tile of the output's upper triangle adds each slab's
// product (dgemm on the calling thread, a task per tile) in slab order. The upper triangle is
// mirrored, so the result is exactly symmetric.
std::vector<Tensor> covariance_host(const Tensor& x, const CovariancePlan& p) {
  const int64_t n = p.n, d = p.d;
  Tensor mean = empty({d}, DType::Float32, Device{});
  Tensor cov = empty({d, d}, DType::Float32, Device{});
  if (d == 0) return {mean, cov};
  const float* src = x.data<float>();

  std::vector<double> sum((size_t)d, 0.0);
  cpu::parallel_for(d, cpu::grain_for(n), [&](int64_t c0, int64_t c1) {
    for (int64_t r = 0; r < n; ++r) {
      const float* row = src + r * d;
      for (int64_t c = c0; c < c1; ++c) sum[c] += row[c];
    }
  });
  // A float32 sum cannot overflow a double: a non-finite column sum means a non-finite entry.
  if (!std::all_of(sum.begin(), sum.end(), [](double v) { return std::isfinite(v); })) check_finite("covariance", "x", x);
  std::vector<double> centre((size_t)d);
  for (int64_t c = 0; c < d; ++c) {
    const double mu = sum[c] / (double)n;
    mean.data<float>()[c] = (float)mu;
    centre[c] = p.beta * mu;
  }

  constexpr int64_t kTile = 128;
  const int64_t slab = std::clamp<int64_t>((int64_t(1) << 20) / d, 16, 1024);  // ≤ 8 MiB of doubles when d allows
  const int64_t blocks = (d + kTile - 1) / kTile;
  std::vector<std::pair<int64_t, int64_t>> tiles;  // (row block, column block), upper triangle
  for (int64_t i = 0; i < blocks; ++i) {
    for (int64_t j = i; j < blocks; ++j) tiles.emplace_back(i, j);
  }
  std::vector<double> acc((size_t)(d * d)), y((size_t)(std::min(slab, n) * d));
  const int ld = (int)d;
  for (int64_t r0 = 0; r0 < n; r0 += slab) {
    const int64_t rows = std::min(slab, n - r0);
    cpu::parallel_for(rows, cpu::grain_for(d), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const float* row = src + (r0 + r) * d;
        double* yr = y.data() + r * d;
        for (int64_t c = 0; c < d; ++c) yr[c] = (double)row[c] - centre[c];
      }
    });
    const double one = 1.0, beta = r0 == 0 ? 0.0 : 1.0;
    const int kk = (int)rows;
    cpu::parallel_for((int64_t)tiles.size(), 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        // acc[I, J] (+)= Y[:, I]ᵀ Y[:, J]; column-major that is accᵀ[J, I] = Yᵀ[J, :] · (Yᵀ[I, :])ᵀ.
        const int64_t i0 = tiles[t].first * kTile, j0 = tiles[t].second * kTile;
        const int mi = (int)std::min(kTile, d - i0), nj = (int)std::min(kTile, d - j0);
        dgemm_("N", "T", &nj, &mi, &kk, &one, y.data() + j0, &ld, y.data() + i0, &ld, &beta, acc.data() + i0 * d + j0,
               &ld, 1, 1);
      }
    });
  }
  float* out = cov.data<float>();
  const double count = (double)n;
  cpu::parallel_for(d, cpu::grain_for(d), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      for (int64_t j = 0; j < d; ++j) out[i * d + j] = (float)((i <= j ? acc[i * d + j] : acc[j * d + i]) / count);
    }
  });
  return {mean, cov};
}

KX_REGISTER_KERNEL(eigh, CPU, eigh_cpu);
KX_REGISTER_KERNEL(svd, CPU, svd_cpu);
KX_REGISTER_KERNEL(covariance, CPU, covariance_cpu);

}  // namespace kx
