/** cast: dtype conversion. Floats round to nearest even (bit for bit with PyTorch). */
import { assertDType, isFloating, type DType } from '../dtype.js';
import { runKernel1 } from '../kernel.js';
import { registerGradient } from '../tape.js';
import type { Tensor } from '../tensor.js';
import { assertTensor } from './check.js';

/**
 * x converted to dtype. Float → int32/uint8 truncates toward zero and saturates (NaN → 0);
 * int32 → uint8 keeps the low byte. Returns x itself when it already has that dtype.
 */
export function cast(x: Tensor, dtype: DType): Tensor {
  assertTensor(x, 'cast');
  const to = assertDType(dtype);
  if (x.dtype === to) return x;
  return runKernel1('cast', [x], { dtype: to });
}

// The gradient flows back through float-to-float casts only.
registerGradient('cast', ([dy], { inputs: [x] }) => [
  dy && isFloating(x!.dtype) && isFloating(dy.dtype) ? cast(dy, x!.dtype) : null,
]);
