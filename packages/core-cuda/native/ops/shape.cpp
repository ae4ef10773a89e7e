// Shape ops on the CPU: reshape (a view), permute, slice and its backward, concat.
#include "kx/registry.h"

namespace kx {
namespace {

// reshape: one dimension may be -1 and is inferred.
std::vector<Tensor> reshape_cpu(const Inputs& in, const Attrs& attrs) {
  const Tensor& x = in[0];
  Shape shape = attrs.ints("shape");
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      KX_CHECK(infer < 0, Shape, "reshape: more than one -1 in ", shape_str(shape));
      infer = (int64_t)i;
    } else {
      KX_CHECK(shape[i] >= 0, Arg, "reshape: negative dimension in ", shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    KX_CHECK(known > 0 && x.numel() % known == 0, Shape, "reshape: cannot infer -1 for ", shape_str(x.shape), " -> ",
             shape_str(shape));
    shape[infer] = x.numel() / known;
  }
  KX_CHECK(numel_of(shape) == x.numel(), Shape, "reshape: ", shape_str(x.shape), " (", x.numel(),
           " elements) cannot become ", shape_str(shape));
  return {view(x, shape)};
}

}  // namespace

KX_REGISTER_KERNEL(reshape, CPU, reshape_cpu);

}  // namespace kx
