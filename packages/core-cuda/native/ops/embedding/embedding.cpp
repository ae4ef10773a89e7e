// Embedding lookup and its gradient on the CPU. The backward is a deterministic scatter-add: ids are
// bucketed by table row (a counting sort that keeps their order), then table rows are filled in
// parallel, each summing its dy rows in increasing position order. No two threads touch one row.
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/thread_pool.h"
#include "kx/convert.h"
#include "kx/registry.h"
#include "ops/embedding/plan.h"

namespace kx {
namespace {

// E_ARG naming the first id outside [0, rows).
void check_ids(const int32_t* ids, int64_t n, int64_t rows, const char* op) {
  for (int64_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= rows) fail_bad_id(op, ids[i], i, rows);
  }
}

std::vector<Tensor> embedding_cpu(const Inputs& in, const Attrs&) {
  const Tensor &ids = in[0], &table = in[1];
  const EmbeddingDims dims = embedding_dims(ids, table);
  const int64_t v = dims.rows, d = dims.d, n = dims.n;
  const int32_t* idp = ids.data<int32_t>();
  check_ids(idp, n, v, "embedding");
  Shape out_shape = ids.shape;
  out_shape.push_back(d);
  Tensor y = empty(out_shape, table.dtype, table.device());
  const size_t row_bytes = (size_t)d * dtype_size(table.dtype);
  const char* src = static_cast<const char*>(table.raw());
  char* dst = static_cast<char*>(y.raw());
  if (row_bytes == 0) return {y};
  cpu::parallel_for(n, cpu::grain_for((int64_t)row_bytes / 4 + 1), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) std::memcpy(dst + i * row_bytes, src + (size_t)idp[i] * row_bytes, row_bytes);
  });
  return {y};
}

template <class T>
void scatter_rows(const int64_t* start, const int64_t* order, const T* dy, T* out, int64_t v, int64_t d) {
  constexpr bool f32 = std::is_same<T, float>::value;
  cpu::parallel_for(v, cpu::grain_for(d * 2), [&](int64_t b, int64_t e) {
    std::vector<float> buf(f32 ? 0 : (size_t)(2 * d));
    for (int64_t r = b; r < e; ++r) {
      T* o = out + r * d;
      if (start[r] == start[r + 1]) {  // an unused row: all-zero bits are +0 in every float format
        std::memset(static_cast<void*>(o), 0, (size_t)d * sizeof(T));
        continue;
      }
      // float32 accumulates in place; halves in a float32 row rounded once at the end.
      float* acc = out_row(o, buf.data());
      std::fill(acc, acc + d, 0.0f);
      for (int64_t k = start[r]; k < start[r + 1]; ++k) {
        const float* g = load_row(dy + order[k] * d, d, f32 ? nullptr : buf.data() + d);
        for (int64_t j = 0; j < d; ++j) acc[j] += g[j];
      }
      narrow(acc, o, d);
    }
  });
}

std::vector<Tensor> embedding_backward_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor &ids = in[0], &dy = in[1];
  const EmbeddingDims dims = embedding_backward_dims(ids, dy, attrs);
  const int64_t v = dims.rows, d = dims.d, n = dims.n;
  const int32_t* idp = ids.data<int32_t>();
  check_ids(idp, n, v, "embedding_backward");
  // Counting sort of positions by id, stable: order[start[r] .. start[r+1]) are the positions of id r.
  std::vector<int64_t> start((size_t)v + 1, 0), order((size_t)n), fill((size_t)v);
  for (int64_t i = 0; i < n; ++i) ++start[(size_t)idp[i] + 1];
  for (int64_t r = 0; r < v; ++r) start[r + 1] += start[r];
  for (int64_t r = 0; r < v; ++r) fill[r] = start[r];
  for (int64_t i = 0; i < n; ++i) order[(size_t)fill[idp[i]]++] = i;
  Tensor out = empty({v, d}, dy.dtype, dy.device());
  KX_DISPATCH_FLOAT(dy.dtype, scatter_rows(start.data(), order.data(), dy.data<scalar_t>(), out.data<scalar_t>(), v, d));
  return {out};
}

}  // namespace

KX_REGISTER_KERNEL(embedding, CPU, embedding_cpu);
KX_REGISTER_KERNEL(embedding_backward, CPU, embedding_backward_cpu);

}  // namespace kx
