/**
 * Shared by the kx.compile tests (compile.test.ts, compile_groups.test.ts, compile_ptx.test.ts,
 * compile_emitter_case.ts): seeded inputs, the addon calls a function makes, AdamW in plain ops,
 * and random elementwise/broadcast graphs for the fuzz tests.
 */
import * as kx from '../src/index.js';
import { Rng } from './parity_cases.js';

/** Uniform values in [lo, hi) from a seeded generator. */
export function uniform(rng: Rng, shape: number[], lo = -1, hi = 1, dtype: kx.DType = 'float32'): kx.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return kx.tensor(Float32Array.from({ length: n }, () => lo + (hi - lo) * rng.uniform()), shape, { dtype });
}

export function mask(rng: Rng, shape: number[]): kx.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return kx.tensor(Uint8Array.from({ length: n }, () => (rng.uniform() < 0.5 ? 1 : 0)), shape, { dtype: 'uint8' });
}

/** The largest |a − e| / |e| over the elements (e nonzero). */
export function maxElementRelError(a: Float32Array, e: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < e.length; i++) worst = Math.max(worst, Math.abs(a[i]! - e[i]!) / Math.abs(e[i]!));
  return worst;
}

/** Native addon calls made by fn (the profiler counts every entry point). */
export function addonCalls(fn: () => void): Map<string, number> {
  kx.profiler.enable();
  kx.profiler.reset();
  try {
    fn();
  } finally {
    kx.profiler.disable();
  }
  return new Map(kx.profiler.rows().filter((r) => r.kind === 'call').map((r) => [r.name, r.calls]));
}

export type Graph = (...xs: kx.Tensor[]) => kx.Tensor[];

/**
 * A random graph over `inputs` (float tensors whose shapes broadcast to `shape`, and uint8 masks):
 * 3 to 14 ops drawn from the binary ops (with tensor or number operands), the unary functions,
 * where and broadcastTo, with domains kept safe (divisors in [1, 2], exponentials of tanh), and one
 * to three of the values returned (some used by later ops too: extra outputs of a fused group).
 * `ops: 'arithmetic'` draws only what the CPU's emitter writes (no transcendental: relu, neg, sqrt
 * and rsqrt in their place), so that every group runs as machine code.
 */
export function randomGraph(seed: number, shape: number[], floats: number, masks: number, ops: 'all' | 'arithmetic' = 'all'): Graph {
  return (...xs: kx.Tensor[]) => {
    const rng = new Rng(seed);
    const pool = xs.slice(0, floats);
    const conds = xs.slice(floats, floats + masks);
    const pick = () => pool[rng.int(Math.max(0, pool.length - 4), pool.length)]!;
    const any = () => pool[rng.int(0, pool.length)]!;
    const count = rng.int(3, 15);
    for (let i = 0; i < count; i++) {
      const a = pick();
      const b = any();
      const k = rng.uniform();
      let y: kx.Tensor;
      if (ops === 'arithmetic' && k >= 0.56 && k < 0.86) y = arithmeticUnary(a, (k - 0.56) / 0.3);
      else if (k < 0.12) y = kx.add(a, b);
      else if (k < 0.22) y = kx.sub(a, b);
      else if (k < 0.34) y = kx.mul(a, b);
      else if (k < 0.4) y = kx.div(a, kx.add(ops === 'all' ? kx.sigmoid(b) : kx.mul(b, b), 1));
      else if (k < 0.48) y = kx.mul(a, rng.int(1, 7) / 4);
      else if (k < 0.52) y = kx.sub(0.5, a);
      else if (k < 0.56) y = kx.add(a, 0.25);
      else if (k < 0.6) y = kx.exp(kx.tanh(a));
      else if (k < 0.64) y = kx.tanh(a);
      else if (k < 0.68) y = kx.sigmoid(a);
      else if (k < 0.72) y = kx.relu(a);
      else if (k < 0.75) y = kx.silu(a);
      else if (k < 0.78) y = kx.gelu(a, { approximate: rng.uniform() < 0.5 ? 'none' : 'tanh' });
      else if (k < 0.8) y = kx.neg(a);
      else if (k < 0.82) y = kx.sqrt(kx.add(kx.mul(a, a), 1));
      else if (k < 0.84) y = kx.log(kx.add(kx.sigmoid(a), 0.5));
      else if (k < 0.86) y = kx.pow(a, 2);
      else if (k < 0.94 && conds.length > 0) y = kx.where(conds[rng.int(0, conds.length)]!, a, rng.uniform() < 0.5 ? b : -0.5);
      else y = kx.broadcastTo(a, shape);
      pool.push(y);
    }
    const outs = [pool[pool.length - 1]!];
    for (let extra = rng.int(0, 3); extra > 0; extra--) outs.push(pool[rng.int(floats, pool.length)]!);
    return outs;
  };
}

/** A unary function the emitter writes, chosen by u in [0, 1), on a safe domain. */
function arithmeticUnary(a: kx.Tensor, u: number): kx.Tensor {
  if (u < 0.25) return kx.relu(a);
  if (u < 0.5) return kx.neg(a);
  if (u < 0.75) return kx.sqrt(kx.add(kx.mul(a, a), 1));
  return kx.rsqrt(kx.add(kx.mul(a, a), 0.5));
}

/** Shapes that broadcast to `shape`: itself, trailing parts, ones in places, a scalar. */
export function broadcastShape(rng: Rng, shape: number[]): number[] {
  const k = rng.uniform();
  if (k < 0.4) return shape;
  if (k < 0.5) return [];
  const tail = shape.slice(rng.int(0, shape.length));
  return tail.map((d) => (rng.uniform() < 0.3 ? 1 : d));
}

/** AdamW's hyper-parameters in adamwPlain. */
export const ADAMW = { beta1: 0.9, beta2: 0.999, eps: 1e-8, wd: 0.01 } as const;

/** AdamW of θ, m, v in plain ops; lr and the bias corrections are 0-d tensors (a new step does not retrace). */
export function adamwPlain(th: kx.Tensor, m: kx.Tensor, v: kx.Tensor, g: kx.Tensor, lr: kx.Tensor, bc1: kx.Tensor, bc2: kx.Tensor): kx.Tensor[] {
  const { beta1, beta2, eps, wd } = ADAMW;
  const m2 = kx.add(kx.mul(m, beta1), kx.mul(g, 1 - beta1));
  const v2 = kx.add(kx.mul(v, beta2), kx.mul(kx.mul(g, g), 1 - beta2));
  const update = kx.div(kx.div(m2, bc1), kx.add(kx.sqrt(kx.div(v2, bc2)), eps));
  return [kx.sub(th, kx.mul(lr, kx.add(update, kx.mul(th, wd)))), m2, v2];
}
