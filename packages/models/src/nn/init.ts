/**
 * Weight initialisers, drawn from a seeded InitRng (float32 tensors):
 * - truncatedNormal: N(0, std²) redrawn outside ±2·std (Keras/TF's TruncatedNormal, bert4keras'
 *   0.02 initializer);
 * - lecunNormal: truncated normal with std = √(1/fanIn) / 0.87962566103423978 (Keras' lecun_normal,
 *   the correction making the truncated distribution's std √(1/fanIn));
 * - glorotUniform: U(−l, l), l = √(6 / (fanIn + fanOut)).
 * Fans follow Keras for a kernel stored [out, in] (PyTorch/HF layout): fanIn = in, fanOut = out.
 */
import { ArgumentError, tensor, type Tensor } from '@kexue/core-cuda';

import { InitRng } from './random.js';

/** How a parameter is filled: a function of its shape and a generator. */
export type Initializer = (shape: readonly number[], rng: InitRng) => Tensor;

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** fanIn = the last axis, fanOut = the one before it (a [out, in] kernel); a vector uses its length for both. */
export function fans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  if (shape.length < 2) return { fanIn: shape[0] ?? 1, fanOut: shape[0] ?? 1 };
  return { fanIn: shape[shape.length - 1]!, fanOut: shape[shape.length - 2]! };
}

function checkPositive(v: number, what: string): number {
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw new ArgumentError(`${what} must be a positive number, got ${String(v)}`);
  return v;
}

/** N(0, std²) truncated to ±2·std by redrawing. */
export function truncatedNormal(std = 0.02): Initializer {
  checkPositive(std, 'truncatedNormal: std');
  return (shape, rng) => {
    const out = new Float32Array(sizeOf(shape));
    for (let i = 0; i < out.length; i++) {
      let v: number;
      do v = rng.normal();
      while (v < -2 || v > 2);
      out[i] = v * std;
    }
    return tensor(out, shape);
  };
}

/** Keras' lecun_normal: truncated normal with std √(1/fanIn)/0.8796… . */
export function lecunNormal(): Initializer {
  return (shape, rng) => truncatedNormal(Math.sqrt(1 / fans(shape).fanIn) / 0.87962566103423978)(shape, rng);
}

/** Keras' glorot_uniform: U(−√(6/(fanIn+fanOut)), +…). */
export function glorotUniform(): Initializer {
  return (shape, rng) => {
    const { fanIn, fanOut } = fans(shape);
    const limit = Math.sqrt(6 / (fanIn + fanOut));
    const out = new Float32Array(sizeOf(shape));
    for (let i = 0; i < out.length; i++) out[i] = (rng.uniform() * 2 - 1) * limit;
    return tensor(out, shape);
  };
}

/** A constant. */
export function constant(value: number): Initializer {
  return (shape) => tensor(new Float32Array(sizeOf(shape)).fill(value), shape);
}

export const zerosInit: Initializer = constant(0);
export const onesInit: Initializer = constant(1);
