/** Argument checks shared by the ops: each failure is the typed error of its kind. */
import { isFloating, type DType } from '../dtype.js';
import { ArgumentError, DTypeError } from '../errors.js';
import { Tensor } from '../tensor.js';

/** E_ARG unless x is a Tensor. */
export function assertTensor(x: unknown, op: string, role = 'x'): asserts x is Tensor {
  if (!(x instanceof Tensor)) throw new ArgumentError(`${op}: ${role} must be a Tensor, got ${typeof x}`);
}

/** E_ARG unless x is a Tensor, E_DTYPE unless it is float32, float16 or bfloat16. */
export function assertFloat(x: unknown, op: string, role = 'x'): asserts x is Tensor {
  assertTensor(x, op, role);
  if (!isFloating(x.dtype)) throw new DTypeError(`${op}: ${role} must be float32, float16 or bfloat16, got ${x.describe()}`);
}

/** E_ARG unless x is a Tensor, E_DTYPE unless it has the given dtype. */
export function assertDTypeOf(x: unknown, dtype: DType, op: string, role: string): asserts x is Tensor {
  assertTensor(x, op, role);
  if (x.dtype !== dtype) throw new DTypeError(`${op}: ${role} must be ${dtype}, got ${x.describe()}`);
}
