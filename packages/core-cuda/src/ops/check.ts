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

/** A norm's eps: a finite number >= 0 (E_ARG otherwise). */
export function checkEps(op: string, eps: unknown): number {
  if (typeof eps !== 'number' || !Number.isFinite(eps) || eps < 0) {
    throw new ArgumentError(`${op}: eps must be a finite number >= 0, got ${String(eps)}`);
  }
  return eps;
}

/** A boolean option: its default when left out (undefined), E_ARG for anything but a boolean. */
export function booleanOption(value: unknown, op: string, name: string, fallback = false): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new ArgumentError(`${op}: ${name} must be a boolean, got ${String(value)}`);
  return value;
}

/** An options argument: {} when left out, E_ARG unless it is an object. */
export function optionsOf<T extends object>(options: T | undefined, op: string): T {
  if (options === undefined) return {} as T;
  if (options === null || typeof options !== 'object') {
    throw new ArgumentError(`${op}: options must be an object, got ${options === null ? 'null' : typeof options}`);
  }
  return options;
}
