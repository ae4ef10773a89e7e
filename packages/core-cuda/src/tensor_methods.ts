/**
 * Attaches the Tensor methods that run ops (TensorOpMethods, declared in tensor.ts) to
 * Tensor.prototype. They live here, above both tensor.ts and the ops, so that the module graph has
 * no cycle (the ops import kernel.ts, which makes Tensors). index.ts loads this module first.
 */
import type { DType } from './dtype.js';
import { cast as castOp } from './ops/cast.js';
import { reshape as reshapeOp } from './ops/shape.js';
import { Tensor, type TensorOpMethods } from './tensor.js';

const methods = {
  cast(this: Tensor, dtype: DType): Tensor {
    return castOp(this, dtype);
  },
  reshape(this: Tensor, shape: readonly number[]): Tensor {
    return reshapeOp(this, shape);
  },
} satisfies TensorOpMethods;

// As a class body would define them: non-enumerable, writable, configurable.
for (const [name, d] of Object.entries(Object.getOwnPropertyDescriptors(methods))) {
  Object.defineProperty(Tensor.prototype, name, { ...d, enumerable: false });
}
