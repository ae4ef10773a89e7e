/**
 * Shared machinery of the property-based suites (properties*.test.ts): fast-check settings, the
 * arbitraries (shapes with 0-size dims, dtypes, broadcasting pairs, values, bad arguments), the
 * outcome rule every op call must obey, and float64 reference helpers.
 *
 * The rule: a call either returns a correct result or throws a KexueError (never E_INTERNAL, never
 * a plain TypeError/RangeError), and leaves no tensor behind when it fails; the suites check the
 * result against a float64 reference computed here, with the tolerances of DESIGN.md "Tests and
 * fixtures" (helpers.tolerance), and that tidy() gives every storage back.
 *
 * Reproducible: every property runs with the fixed SEED (fast-check prints the seed and path of a
 * failure; rerun one with KEXUE_PROP_SEED=<seed> and `path` in the test's fc.assert options).
 * KEXUE_PROP_SEED picks another seed and KEXUE_PROP_RUNS multiplies every numRuns, for longer hunts.
 */
import fc from 'fast-check';
import { expect } from 'vitest';

import * as kx from '../src/index.js';
import { tolerance } from './helpers.js';

export { tolerance };

/** The seed of every property (fixed so that CI is reproducible). */
export const SEED = process.env.KEXUE_PROP_SEED !== undefined ? Number(process.env.KEXUE_PROP_SEED) : 20250615;
const RUN_FACTOR = process.env.KEXUE_PROP_RUNS !== undefined ? Number(process.env.KEXUE_PROP_RUNS) : 1;

/** fast-check parameters: the fixed seed, numRuns scaled by KEXUE_PROP_RUNS. */
export function params(numRuns: number): fc.Parameters<unknown> {
  return { seed: SEED, numRuns: Math.max(1, Math.round(numRuns * RUN_FACTOR)), endOnFailure: false };
}

// ---- dtypes and shapes ---------------------------------------------------------------------------

export const DTYPES = kx.DTYPES;
export const FLOAT_DTYPES: readonly kx.DType[] = ['float32', 'float16', 'bfloat16'];
export const INT_DTYPES: readonly kx.DType[] = ['int32', 'uint8'];

export const dtypeArb: fc.Arbitrary<kx.DType> = fc.constantFrom(...DTYPES);
export const floatDTypeArb: fc.Arbitrary<kx.DType> = fc.constantFrom(...FLOAT_DTYPES);
export const intDTypeArb: fc.Arbitrary<kx.DType> = fc.constantFrom(...INT_DTYPES);

/** A dimension: 0 about one time in six, else 1..max. */
export function dimArb(max = 4): fc.Arbitrary<number> {
  return fc.oneof({ arbitrary: fc.constant(0), weight: 1 }, { arbitrary: fc.integer({ min: 1, max }), weight: 5 });
}

/** A shape of rank minRank..maxRank, dims 0..maxDim. */
export function shapeArb(minRank = 0, maxRank = 4, maxDim = 4): fc.Arbitrary<number[]> {
  return fc.array(dimArb(maxDim), { minLength: minRank, maxLength: maxRank });
}

/**
 * A shape with one long dim (17 … 16411, past the kernels' vector widths, block sizes and thread
 * grains) among short ones: about one case in eight of `anyShapeArb`.
 */
export const longShapeArb: fc.Arbitrary<number[]> = fc
  .tuple(fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 0, maxLength: 2 }), fc.constantFrom(17, 33, 100, 257, 1031, 4099, 16411), fc.nat())
  .map(([rest, long, at]) => {
    const s = [...rest];
    s.splice(at % (rest.length + 1), 0, Math.min(long, Math.floor(20000 / sizeOf(rest)))); // at most 20000 elements
    return s;
  });

/**
 * A shape of rank 5–24 (past the 16 dims a broadcast index carries before coalescing), dims 1–3 with
 * at most 8 above 1 (so at most 6561 elements), and sometimes a 0.
 */
export const highRankShapeArb: fc.Arbitrary<number[]> = fc
  .tuple(fc.integer({ min: 5, max: 24 }), fc.array(fc.nat(), { minLength: 24, maxLength: 24 }), fc.boolean())
  .map(([rank, r, zero]) => {
    let big = 0;
    return Array.from({ length: rank }, (_, i) => {
      if (zero && i === r[0]! % rank) return 0;
      const d = 1 + (r[i]! % 3);
      return d > 1 && big++ >= 8 ? 1 : d;
    });
  });

/** Shapes of rank minRank..maxRank: mostly short ones (shapeArb), some with a long dim, some of high rank. */
export function anyShapeArb(minRank = 0, maxRank = 24): fc.Arbitrary<number[]> {
  const fits = (s: number[]) => s.length >= minRank && s.length <= maxRank;
  return fc.oneof(
    { arbitrary: shapeArb(minRank, Math.min(4, maxRank)), weight: 12 },
    { arbitrary: longShapeArb.filter(fits), weight: 2 },
    ...(maxRank >= 5 ? [{ arbitrary: highRankShapeArb.filter(fits), weight: 1 }] : []),
  );
}

export function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The largest |v| over the finite entries (0 when there are none). */
export function maxAbs(vals: readonly number[]): number {
  let m = 0;
  for (const v of vals) if (Number.isFinite(v) && Math.abs(v) > m) m = Math.abs(v);
  return m;
}

/** NumPy's broadcast of shapes, or null when they do not broadcast (written independently of kexue's). */
export function npBroadcast(...shapes: (readonly number[])[]): number[] | null {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) {
      const k = s.length - rank + i;
      const e = k >= 0 ? s[k]! : 1;
      if (e === 1) continue;
      if (d !== 1 && d !== e) return null;
      d = e;
    }
    out.push(d);
  }
  return out;
}

/** A shape that broadcasts to `out`: some leading dims dropped, some dims set to 1. */
export function broadcastableTo(out: readonly number[]): fc.Arbitrary<number[]> {
  return fc
    .tuple(fc.integer({ min: 0, max: out.length }), fc.array(fc.boolean(), { minLength: out.length, maxLength: out.length }))
    .map(([drop, ones]) => out.slice(drop).map((d, i) => (ones[drop + i] ? 1 : d)));
}

/** Two shapes that broadcast together (NumPy rules). */
export const broadcastPairArb: fc.Arbitrary<[number[], number[]]> = anyShapeArb().chain((out) => fc.tuple(broadcastableTo(out), broadcastableTo(out)));

/**
 * Two shapes that do not broadcast: a compatible pair with one aligned dim pair made to clash
 * (two different sizes, neither 1; 0 against 2 clashes too).
 */
export const clashingPairArb: fc.Arbitrary<[number[], number[]]> = fc
  .tuple(shapeArb(1, 4), shapeArb(0, 3), fc.nat(), fc.constantFrom<[number, number]>([0, 2], [2, 3], [3, 0], [4, 2], [2, 0]), fc.boolean())
  .map(([a, b, at, [p, q], swap]) => {
    const bb = b.length === 0 ? [1] : b;
    const rank = Math.min(a.length, bb.length);
    const k = at % rank;
    const a2 = [...a];
    const b2 = [...bb];
    a2[a2.length - 1 - k] = p;
    b2[b2.length - 1 - k] = q;
    // The rest made compatible: the other aligned dims of b follow a's (or 1).
    for (let i = 0; i < rank; i++) if (i !== k) b2[b2.length - 1 - i] = a2[a2.length - 1 - i]!;
    return (swap ? [b2, a2] : [a2, b2]) as [number[], number[]];
  });

// ---- values ---------------------------------------------------------------------------------------

/**
 * How a tensor's values are drawn: 'grid' (multiples of 1/16 in [-4, 4], exact in every float
 * dtype, so sums and products of a few are exact in float32), 'wide' (any float in [-4, 4]),
 * 'special' (grid values mixed with NaN, ±Infinity and ±0).
 */
export type ValueKind = 'grid' | 'wide' | 'special';
export interface ValueSpec {
  seed: number;
  kind: ValueKind;
}
export const valueSpecArb = (kinds: ValueKind[] = ['grid', 'wide']): fc.Arbitrary<ValueSpec> =>
  fc.record({ seed: fc.integer(), kind: fc.constantFrom(...kinds) });

/** mulberry32: a small deterministic generator for tensor contents (shrinking acts on the seed). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SPECIALS = [NaN, Infinity, -Infinity, 0, -0];

export function values(n: number, spec: ValueSpec, scale = 4): number[] {
  const r = rng(spec.seed);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const u = r();
    if (spec.kind === 'special' && r() < 0.25) out[i] = SPECIALS[Math.floor(u * SPECIALS.length)]!;
    else if (spec.kind === 'wide') out[i] = (u * 2 - 1) * scale;
    else out[i] = Math.round((u * 2 - 1) * scale * 16) / 16;
  }
  return out;
}

/** Integers in [lo, hi]. */
export function ints(n: number, seed: number, lo: number, hi: number): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => lo + Math.floor(r() * (hi - lo + 1)));
}

/** A tensor of `dtype` holding `vals` (converted as kx.tensor converts them: halves round to nearest even). */
export function make(vals: readonly number[], shape: readonly number[], dtype: kx.DType = 'float32'): kx.Tensor {
  if (dtype === 'int32') return kx.tensor(Int32Array.from(vals), shape);
  if (dtype === 'uint8') return kx.tensor(Uint8Array.from(vals), shape);
  return kx.tensor(Float32Array.from(vals), shape, { dtype });
}

/** A tensor of random values of the spec. */
export function random(shape: readonly number[], dtype: kx.DType, spec: ValueSpec, scale = 4): kx.Tensor {
  const n = sizeOf(shape);
  if (dtype === 'int32') return make(ints(n, spec.seed, -1000, 1000), shape, dtype);
  if (dtype === 'uint8') return make(ints(n, spec.seed, 0, 255), shape, dtype);
  return make(values(n, spec, scale), shape, dtype);
}

/** A tensor's elements as numbers (what the reference computes from: the stored, rounded values). */
export function read(t: kx.Tensor): number[] {
  const raw = kx.isFloating(t.dtype) ? t.toFloat32Array() : t.dataSync();
  return Array.from(raw);
}

// ---- float rounding to the storage types (references for cast and half outputs) ------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 → bfloat16 value, round to nearest even (NaN stays NaN). */
export function roundBF16(x: number): number {
  f32[0] = x;
  if (Number.isNaN(f32[0])) return NaN;
  const bits = u32[0]!;
  const rounded = (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 0;
  u32[0] = (rounded & 0xffff0000) >>> 0;
  return f32[0]!;
}

/** float32 → float16 value, round to nearest even, overflow to ±Infinity (NaN stays NaN). */
export function roundF16(x: number): number {
  const v = Math.fround(x);
  if (!Number.isFinite(v)) return v;
  const a = Math.abs(v);
  if (a >= 65520) return v > 0 ? Infinity : -Infinity; // 65504 + half an ulp (2^4): ties round to even, up
  // Quantum: 2^(e - 10) for normal halves (e ≥ -14), 2^-24 for subnormals.
  let e = a === 0 ? -14 : Math.floor(Math.log2(a));
  if (a !== 0 && 2 ** e > a) e -= 1;
  if (a !== 0 && 2 ** (e + 1) <= a) e += 1;
  e = Math.max(-14, e);
  const q = 2 ** (e - 10);
  const m = a / q;
  let r = Math.floor(m);
  const frac = m - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r += 1;
  const out = r * q;
  return v < 0 || Object.is(v, -0) ? -out : out;
}

/** A float64 value rounded as a kernel that computes in float32 stores it in `dtype`. */
export function roundTo(dtype: kx.DType, x: number): number {
  const v = Math.fround(x);
  if (dtype === 'bfloat16') return roundBF16(v);
  if (dtype === 'float16') return roundF16(v);
  return v;
}

/** erf in float64: its Taylor series below 3, a continued fraction for erfc above. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const a = Math.abs(x);
  if (a < 3) {
    let term = a;
    let sum = a;
    for (let n = 1; n < 200 && Math.abs(term) > 1e-17 * Math.abs(sum); n++) {
      term *= (-a * a) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * Math.min(1, (2 / Math.sqrt(Math.PI)) * sum);
  }
  if (!Number.isFinite(a)) return Math.sign(x);
  // erfc(a) = e^(−a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + ...)))).
  let f = a;
  for (let k = 60; k >= 1; k--) f = a + k / 2 / f;
  return Math.sign(x) * (1 - Math.exp(-a * a) / Math.sqrt(Math.PI) / f);
}

// ---- outcomes -------------------------------------------------------------------------------------

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: kx.KexueError };

function describeThrown(e: unknown): string {
  if (e instanceof Error) return `${e.constructor.name}${(e as { code?: string }).code ? ` ${(e as { code?: string }).code}` : ''}: ${e.message}`;
  return String(e);
}

/**
 * Runs fn and classifies what happened. A KexueError other than E_INTERNAL is an outcome; anything
 * else thrown (TypeError, RangeError, E_INTERNAL, a plain Error) fails the property. A failed call
 * must leave no tensor behind (its temporaries disposed), checked by the live-tensor and storage
 * counts.
 */
export function attempt<T>(fn: () => T): Outcome<T> {
  const before = kx.memory();
  try {
    return { ok: true, value: fn() };
  } catch (e) {
    if (!(e instanceof kx.KexueError) || e.code === 'E_INTERNAL') {
      throw new Error(`expected a result or a KexueError, got ${describeThrown(e)}`, { cause: e });
    }
    const after = kx.memory();
    if (after.tensors !== before.tensors || after.storages !== before.storages) {
      throw new Error(
        `a failed call (${e.code}: ${e.message}) left ${after.tensors - before.tensors} tensors and ` +
          `${after.storages - before.storages} storages behind`,
      );
    }
    return { ok: false, error: e };
  }
}

/** attempt(fn), which must succeed; returns the value. */
export function succeeds<T>(fn: () => T, what = 'the call'): T {
  const r = attempt(fn);
  if (!r.ok) throw new Error(`${what} should succeed, got ${r.error.code}: ${r.error.message}`);
  return r.value;
}

/** attempt(fn), which must throw a KexueError with one of `codes` (any code when none are given). */
export function fails(fn: () => unknown, ...codes: kx.ErrorCode[]): kx.KexueError {
  const r = attempt(fn);
  if (r.ok) {
    const v = r.value;
    throw new Error(`expected ${codes.length ? codes.join(' or ') : 'a KexueError'}, got a result${v instanceof kx.Tensor ? ` ${v.describe()}` : ''}`);
  }
  if (codes.length > 0 && !codes.includes(r.error.code)) {
    throw new Error(`expected ${codes.join(' or ')}, got ${r.error.code}: ${r.error.message}`);
  }
  return r.error;
}

/**
 * Runs body inside tidy and asserts that every tensor and native storage it made is freed when the
 * scope closes (kx.memory() back to where it started).
 */
export function noLeak(body: () => void): void {
  const before = kx.memory();
  kx.tidy(() => {
    body();
  });
  const after = kx.memory();
  if (after.tensors !== before.tensors || after.storages !== before.storages || after.bytes !== before.bytes) {
    throw new Error(
      `leak: ${after.tensors - before.tensors} tensors, ${after.storages - before.storages} storages, ` +
        `${after.bytes - before.bytes} bytes left after tidy`,
    );
  }
}

// ---- comparisons ----------------------------------------------------------------------------------

/**
 * max |a − e| / max |e| over the finite reference entries (the measure of helpers.maxRelError, in
 * float64); a non-finite reference entry must be matched exactly (NaN by NaN, ±Infinity by itself),
 * and a finite one by a finite value.
 */
export function relError(actual: ArrayLike<number>, expected: ArrayLike<number>, floor = 0): { err: number; at: number } {
  let maxErr = 0;
  let scale = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const x = actual[i]!;
    const y = expected[i]!;
    if (!Number.isFinite(y) || !Number.isFinite(x)) {
      if (!(x === y || (Number.isNaN(x) && Number.isNaN(y)))) return { err: Infinity, at: i };
      continue;
    }
    const d = Math.abs(x - y);
    if (d > maxErr) {
      maxErr = d;
      at = i;
    }
    scale = Math.max(scale, Math.abs(y));
  }
  scale = Math.max(scale, floor);
  return { err: scale === 0 ? maxErr : maxErr / scale, at };
}

/**
 * Asserts dtype, shape and values (relError ≤ tol) of a result against a float64 reference. `floor`
 * is the least scale the error is relative to (for functions whose accuracy is stated in absolute
 * terms, such as GELU's Φ).
 */
export function expectTensor(t: kx.Tensor, shape: readonly number[], dtype: kx.DType, expected: ArrayLike<number>, tol: number, label = '', floor = 0): void {
  expect(t, `${label} result`).toBeInstanceOf(kx.Tensor);
  expect(t.dtype, `${label} dtype`).toBe(dtype);
  expect([...t.shape], `${label} shape`).toEqual([...shape]);
  const got = read(t);
  expect(got.length, `${label} size`).toBe(expected.length);
  const { err, at } = relError(got, expected, floor);
  if (!(err <= tol)) {
    throw new Error(`${label} values: relative error ${err} > ${tol} at element ${at}: got ${got[at]}, expected ${expected[at]}`);
  }
}

// ---- index arithmetic for the references -------------------------------------------------------------

export function stridesOf(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/** The multi-index of flat index i in shape. */
export function unravel(i: number, shape: readonly number[]): number[] {
  const idx = new Array<number>(shape.length);
  for (let a = shape.length - 1; a >= 0; a--) {
    const d = shape[a]!;
    idx[a] = d === 0 ? 0 : i % d;
    i = d === 0 ? 0 : Math.floor(i / d);
  }
  return idx;
}

/** The flat index in `shape` of output multi-index `idx` under NumPy broadcasting (right-aligned, size-1 dims repeat). */
export function broadcastFlat(idx: readonly number[], shape: readonly number[]): number {
  const off = idx.length - shape.length;
  let flat = 0;
  for (let a = 0; a < shape.length; a++) flat = flat * shape[a]! + (shape[a] === 1 ? 0 : idx[off + a]!);
  return flat;
}

// ---- bad arguments ----------------------------------------------------------------------------------

/** Things that are not tensors, for an argument that must be one. */
export const notATensorArb: fc.Arbitrary<unknown> = fc.constantFrom<unknown>(null, undefined, 0, 1.5, 'x', {}, [], [1, 2], true, () => 1, Symbol('t'), 10n);

/** Numbers that are not valid axes or sizes in any shape: non-integers, NaN, ±Infinity, huge. */
export const badNumberArb: fc.Arbitrary<unknown> = fc.constantFrom<unknown>(NaN, Infinity, -Infinity, 0.5, -1.5, 2 ** 53, -(2 ** 53), 1e300, '1', null, true, [0]);

/** A disposed tensor of the given shape and dtype. */
export function disposed(shape: readonly number[], dtype: kx.DType = 'float32'): kx.Tensor {
  const t = kx.zeros(shape, { dtype });
  t.dispose();
  return t;
}

/** The description of a value for messages (tensors by shape and dtype). */
export function show(v: unknown): string {
  if (v instanceof kx.Tensor) return v.isDisposed ? `disposed ${v.describe()}` : v.describe();
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'symbol' || typeof v === 'function') return String(v);
  try {
    return JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x)) ?? String(v);
  } catch {
    return String(v);
  }
}
