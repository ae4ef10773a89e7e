// The embedding family's validation, shared by the CPU (embedding.cpp) and CUDA (embedding.cu)
// kernels: the shapes, and the error for an id outside the table (the CPU scans the ids on the host,
// CUDA on the device; both report the first bad index with this message).
#pragma once
#include <cstdint>

#include "kx/registry.h"

namespace kx {

struct EmbeddingDims {
  int64_t rows;  // V, the table's rows
  int64_t d;     // D, the row length
  int64_t n;     // number of ids
};

// embedding(ids, table): table [V, D]; the output is ids' shape + [D].
inline EmbeddingDims embedding_dims(const Tensor& ids, const Tensor& table) {
  KX_CHECK(table.dim() == 2, Shape, "embedding: table must be [V, D], got ", shape_str(table.shape));
  return {table.shape[0], table.shape[1], ids.numel()};
}

// embedding_backward(ids, dy) with attribute rows = V: dy is ids' shape + [D].
inline EmbeddingDims embedding_backward_dims(const Tensor& ids, const Tensor& dy, const Attrs& attrs) {
  const int64_t v = attrs.int_("rows", -1);
  KX_CHECK(v >= 0, Arg, "embedding_backward: attribute 'rows' (the table's V) must be >= 0, got ", v);
  KX_CHECK(dy.dim() == ids.dim() + 1 && Shape(dy.shape.begin(), dy.shape.end() - 1) == ids.shape, Shape,
           "embedding_backward: dy ", shape_str(dy.shape), " must be ids' shape ", shape_str(ids.shape), " + [D]");
  return {v, dy.shape.back(), ids.numel()};
}

[[noreturn]] inline void fail_bad_id(const char* op, int32_t id, int64_t index, int64_t rows) {
  fail(Code::Arg, op, ": id ", id, " at index ", index, " is outside [0, ", rows, ")");
}

}  // namespace kx
