// Property-based tests of the core's ops, part 1: elementwise ops and broadcasting, where, the
// unary functions, reductions, softmax/logSoftmax, cast and tensor creation. Random shapes (rank
// 0–4 mostly, 0-size dims, sometimes a long dim or rank up to 24), dtypes, broadcasting pairs and
// bad arguments; every outcome must be a correct result (against a float64 reference) or a
// KexueError, with no tensor left behind (see property_support.ts). The other parts:
// properties_linalg.test.ts (matmul, shape ops), properties_nn.test.ts (norms, embedding,
// cross-entropy, attention, rope, dropout), properties_grad.test.ts (gradients against finite
// differences) and properties_native.test.ts (the native layer under arbitrary runKernel calls, in a
// child process).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import {
  anyShapeArb,
  attempt,
  badNumberArb,
  broadcastPairArb,
  broadcastableTo,
  clashingPairArb,
  disposed,
  dtypeArb,
  erf,
  expectTensor,
  fails,
  FLOAT_DTYPES,
  floatDTypeArb,
  intDTypeArb,
  ints,
  make,
  maxAbs,
  noLeak,
  notATensorArb,
  npBroadcast,
  params,
  random,
  read,
  relError,
  roundTo,
  shapeArb,
  show,
  sizeOf,
  succeeds,
  tolerance,
  unravel,
  broadcastFlat,
  valueSpecArb,
  values,
  type ValueSpec,
} from './property_support.js';

// ---- elementwise + broadcasting ------------------------------------------------------------------

type BinaryName = 'add' | 'sub' | 'mul' | 'div';
const BINARY: Record<BinaryName, { fn: (a: kx.TensorLike, b: kx.TensorLike) => kx.Tensor; ref: (a: number, b: number) => number }> = {
  add: { fn: kx.add, ref: (a, b) => a + b },
  sub: { fn: kx.sub, ref: (a, b) => a - b },
  mul: { fn: kx.mul, ref: (a, b) => a * b },
  div: { fn: kx.div, ref: (a, b) => a / b },
};
const binaryNameArb = fc.constantFrom<BinaryName>('add', 'sub', 'mul', 'div');

/** The elementwise result of f over operands of shapes sa and sb broadcast to `out`. */
function broadcastRef(out: readonly number[], sa: readonly number[], av: readonly number[], sb: readonly number[], bv: readonly number[], f: (a: number, b: number) => number): number[] {
  return Array.from({ length: sizeOf(out) }, (_, i) => {
    const idx = unravel(i, out);
    return f(av[broadcastFlat(idx, sa)]!, bv[broadcastFlat(idx, sb)]!);
  });
}

describe('properties: elementwise ops and broadcasting', () => {
  it('add/sub/mul/div give the NumPy broadcast shape and the float32 result, rounded once to the dtype', () => {
    fc.assert(
      fc.property(
        binaryNameArb,
        floatDTypeArb,
        broadcastPairArb,
        valueSpecArb(['grid', 'wide', 'special']),
        valueSpecArb(['grid', 'wide', 'special']),
        fc.constantFrom('tensors', 'number first', 'number second'),
        fc.oneof({ arbitrary: fc.double({ min: -8, max: 8, noNaN: true }), weight: 5 }, { arbitrary: fc.constantFrom(1e6, -7e4, 65504, 1e-8, NaN, Infinity, -0), weight: 1 }),
        (op, dtype, [sa, sb], va, vb, form, num) =>
          noLeak(() => {
            const a = random(sa, dtype, va);
            const b = random(sb, dtype, vb);
            const { fn, ref } = BINARY[op];
            // A number operand is a scalar of the other operand's dtype: num rounded to it.
            const [A, B, shapeA, shapeB, valsA, valsB] =
              form === 'number first'
                ? [num, b, [], sb, [roundTo(dtype, num)], read(b)]
                : form === 'number second'
                  ? [a, num, sa, [], read(a), [roundTo(dtype, num)]]
                  : [a, b, sa, sb, read(a), read(b)];
            const out = npBroadcast(shapeA, shapeB)!;
            const y = succeeds(() => fn(A, B), `${op}(${show(A)}, ${show(B)})`);
            // float32 + − × ÷ are correctly rounded, so the result is exact: one rounding to float32
            // (what float64 then fround gives for float32 operands) and one to the storage dtype.
            const expected = broadcastRef(out, shapeA, valsA, shapeB, valsB, (x, z) => roundTo(dtype, ref(x, z)));
            expectTensor(y, out, dtype, expected, 0, `${op} ${dtype} ${show(shapeA)} ${show(shapeB)}`);
          }),
      ),
      params(900),
    );
  });

  it('add/sub/mul/div refuse shapes that do not broadcast (E_SHAPE), mixed or integer dtypes (E_DTYPE), non-tensors (E_ARG), disposed tensors (E_DISPOSED)', () => {
    const fault = fc.constantFrom('clash', 'mixed dtypes', 'integer dtype', 'not a tensor', 'two numbers', 'disposed');
    fc.assert(
      fc.property(binaryNameArb, fault, floatDTypeArb, intDTypeArb, clashingPairArb, broadcastPairArb, notATensorArb, fc.boolean(), (op, f, dt, it, clash, [sa, sb], junk, first) =>
        noLeak(() => {
          const fn = BINARY[op].fn;
          const spec = { seed: 1, kind: 'grid' } as const;
          let a: unknown = random(sa, dt, spec);
          let b: unknown = random(sb, dt, spec);
          let code: kx.ErrorCode;
          switch (f) {
            case 'clash':
              [a, b] = [random(clash[0], dt, spec), random(clash[1], dt, spec)];
              code = 'E_SHAPE';
              break;
            case 'mixed dtypes': {
              const other = FLOAT_DTYPES.find((d) => d !== dt)!;
              if (first) a = random(sa, other, spec);
              else b = random(sb, other, spec);
              code = 'E_DTYPE';
              break;
            }
            case 'integer dtype':
              if (first) a = random(sa, it, spec);
              else b = random(sb, it, spec);
              code = 'E_DTYPE';
              break;
            case 'not a tensor':
              if (typeof junk === 'number') return; // a number is a scalar operand
              if (first) a = junk;
              else b = junk;
              code = 'E_ARG';
              break;
            case 'two numbers':
              [a, b] = [1, 2];
              code = 'E_ARG';
              break;
            case 'disposed':
              if (first) a = disposed(sa, dt);
              else b = disposed(sb, dt);
              code = 'E_DISPOSED';
              break;
          }
          fails(() => fn(a as kx.Tensor, b as kx.Tensor), code);
        }),
      ),
      params(600),
    );
  });

  it('where(cond, a, b) broadcasts all three and picks exactly; a number for a or b is a scalar of the other\'s dtype', () => {
    const tripleArb = anyShapeArb().chain((out) => fc.tuple(broadcastableTo(out), broadcastableTo(out), broadcastableTo(out)));
    fc.assert(
      fc.property(floatDTypeArb, tripleArb, fc.integer(), valueSpecArb(['grid', 'special']), fc.constantFrom('tensors', 'a number', 'b number'), fc.constantFrom(-Infinity, 0, 1.1, 1e5), (dtype, [sc, sa0, sb0], seed, spec, form, num) =>
        noLeak(() => {
          const cond = make(ints(sizeOf(sc), seed, 0, 3).map((v) => (v === 3 ? 255 : v % 2)), sc, 'uint8');
          const sa = form === 'a number' ? [] : sa0;
          const sb = form === 'b number' ? [] : sb0;
          const a = random(sa, dtype, spec);
          const b = random(sb, dtype, { ...spec, seed: spec.seed + 1 });
          const out = npBroadcast(sc, sa, sb)!;
          const y = succeeds(() => kx.where(cond, form === 'a number' ? num : a, form === 'b number' ? num : b));
          const [cv, av, bv] = [read(cond), form === 'a number' ? [roundTo(dtype, num)] : read(a), form === 'b number' ? [roundTo(dtype, num)] : read(b)];
          const expected = Array.from({ length: sizeOf(out) }, (_, i) => {
            const idx = unravel(i, out);
            return cv[broadcastFlat(idx, sc)] ? av[broadcastFlat(idx, sa)]! : bv[broadcastFlat(idx, sb)]!;
          });
          expectTensor(y, out, dtype, expected, 0, 'where');
        }),
      ),
      params(450),
    );
  });

  it('where refuses a non-uint8 condition (E_DTYPE) and shapes that do not broadcast (E_SHAPE)', () => {
    fc.assert(
      fc.property(floatDTypeArb, clashingPairArb, fc.constantFrom<kx.DType>('float32', 'int32', 'bfloat16'), fc.boolean(), (dtype, [s1, s2], condType, condClash) =>
        noLeak(() => {
          const spec = { seed: 3, kind: 'grid' } as const;
          if (condClash) {
            const [c, a, b] = [kx.zeros(s1, { dtype: 'uint8' }), random(s2, dtype, spec), random(s2, dtype, spec)];
            fails(() => kx.where(c, a, b), 'E_SHAPE');
          } else {
            const [c, a, b] = [kx.zeros(s1, { dtype: condType }), random(s1, dtype, spec), random(s1, dtype, spec)];
            fails(() => kx.where(c, a, b), 'E_DTYPE');
          }
        }),
      ),
      params(180),
    );
  });
});

// ---- unary functions ---------------------------------------------------------------------------------

/** x^p as the kernel defines it: exact shortcuts for 2, 1, 0.5, 3, −1 (in float32), else C's powf. */
function powRef(x: number, p: number): number {
  const q = Math.fround(p);
  if (q === 2) return Math.fround(x * x);
  if (q === 1) return x;
  if (q === 0.5) return Math.sqrt(x);
  if (q === 3) return Math.fround(Math.fround(x * x) * x);
  if (q === -1) return 1 / x;
  // C's pow where JavaScript's differs: pow(1, y) = 1 for any y, pow(−1, ±∞) = 1.
  if (x === 1 || (x === -1 && !Number.isFinite(q))) return 1;
  return Math.pow(x, q);
}

type UnaryName = 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'tanh' | 'sigmoid' | 'relu' | 'silu' | 'gelu' | 'geluTanh' | 'pow';
const S2PI = Math.sqrt(2 / Math.PI);
const UNARY: Record<Exclude<UnaryName, 'pow'>, { fn: (x: kx.Tensor) => kx.Tensor; ref: (x: number) => number }> = {
  neg: { fn: kx.neg, ref: (x) => -x },
  exp: { fn: kx.exp, ref: Math.exp },
  log: { fn: kx.log, ref: Math.log },
  sqrt: { fn: kx.sqrt, ref: Math.sqrt },
  rsqrt: { fn: kx.rsqrt, ref: (x) => 1 / Math.sqrt(x) },
  tanh: { fn: kx.tanh, ref: Math.tanh },
  sigmoid: { fn: kx.sigmoid, ref: (x) => 1 / (1 + Math.exp(-x)) },
  relu: { fn: kx.relu, ref: (x) => (x < 0 ? 0 : x) },
  silu: { fn: kx.silu, ref: (x) => x / (1 + Math.exp(-x)) },
  gelu: { fn: (x) => kx.gelu(x), ref: (x) => x * 0.5 * (1 + erf(x / Math.SQRT2)) },
  geluTanh: { fn: (x) => kx.gelu(x, { approximate: 'tanh' }), ref: (x) => 0.5 * x * (1 + Math.tanh(S2PI * (x + 0.044715 * x * x * x))) },
};

describe('properties: unary functions', () => {
  it('each unary function matches its float64 definition (tolerance by dtype; NaN and ±Infinity exactly)', () => {
    const nameArb = fc.constantFrom<UnaryName>('neg', 'exp', 'log', 'sqrt', 'rsqrt', 'tanh', 'sigmoid', 'relu', 'silu', 'gelu', 'geluTanh', 'pow');
    const exponentArb = fc.oneof(fc.constantFrom(0, 0.5, 1, 2, 3, -1, -0.5, 1.5, -2, Infinity, -Infinity), fc.double({ min: -4, max: 4, noNaN: true }));
    fc.assert(
      fc.property(nameArb, floatDTypeArb, anyShapeArb(), valueSpecArb(['grid', 'wide', 'special']), fc.constantFrom(4, 30), exponentArb, (name, dtype, shape, spec, scale, p) =>
        noLeak(() => {
          const x = random(shape, dtype, spec, scale);
          const xv = read(x);
          const [fn, ref] = name === 'pow' ? [(t: kx.Tensor) => kx.pow(t, p), (v: number) => powRef(v, p)] : [UNARY[name].fn, UNARY[name].ref];
          const y = succeeds(() => fn(x), `${name}(${x.describe()})`);
          const expected = xv.map((v) => roundTo(dtype, ref(v)));
          // GELU's Φ is accurate in absolute terms (1.5e-7, PyTorch's erf; the tanh form loses the
          // same in 1 + tanh for negative x), so its error is measured against the inputs' scale.
          const floor = name === 'gelu' || name === 'geluTanh' ? maxAbs(xv) : 0;
          expectTensor(y, shape, dtype, expected, tolerance(dtype), `${name}${name === 'pow' ? `(${p})` : ''} ${dtype}`, floor);
        }),
      ),
      params(1200),
    );
  });

  it('unary functions refuse integer dtypes (E_DTYPE), non-tensors (E_ARG), disposed tensors (E_DISPOSED), bad options (E_ARG)', () => {
    const nameArb = fc.constantFrom<Exclude<UnaryName, 'pow'>>('neg', 'exp', 'log', 'sqrt', 'rsqrt', 'tanh', 'sigmoid', 'relu', 'silu', 'gelu');
    fc.assert(
      fc.property(nameArb, intDTypeArb, shapeArb(), notATensorArb, fc.constantFrom('integer', 'junk', 'disposed', 'gelu option', 'pow exponent'), badNumberArb, (name, it, shape, junk, fault, bad) =>
        noLeak(() => {
          const fn = UNARY[name].fn;
          const [x, xi, xd] = [kx.zeros(shape), kx.zeros(shape, { dtype: it }), disposed(shape)];
          if (fault === 'integer') fails(() => fn(xi), 'E_DTYPE');
          else if (fault === 'junk') fails(() => fn(junk as kx.Tensor), 'E_ARG');
          else if (fault === 'disposed') fails(() => fn(xd), 'E_DISPOSED');
          else if (fault === 'gelu option') {
            if (bad !== null) fails(() => kx.gelu(x, { approximate: bad as 'none' }), 'E_ARG'); // (null: the default)
          }
          else if (typeof bad !== 'number' || Number.isNaN(bad)) fails(() => kx.pow(x, bad as number), 'E_ARG');
        }),
      ),
      params(360),
    );
  });
});

// ---- reductions --------------------------------------------------------------------------------------

type ReduceName = 'sum' | 'mean' | 'max';
const REDUCE: Record<ReduceName, (x: kx.Tensor, axes?: number | number[], keepDims?: boolean) => kx.Tensor> = { sum: kx.sum, mean: kx.mean, max: kx.max };

/** The reduction of xv (shape) over the flagged axes, in float64: shape and values. */
function reduceRef(op: ReduceName, shape: readonly number[], xv: readonly number[], flags: readonly boolean[], keepDims: boolean): { shape: number[]; values: number[] } {
  const outShape = shape.flatMap((d, a) => (flags[a] ? (keepDims ? [1] : []) : [d]));
  const kept = shape.map((d, a) => (flags[a] ? 1 : d));
  const n = sizeOf(kept);
  const acc = new Array<number>(n).fill(op === 'max' ? -Infinity : 0);
  const count = new Array<number>(n).fill(0);
  for (let i = 0; i < xv.length; i++) {
    const idx = unravel(i, shape);
    const o = broadcastFlat(idx, kept);
    const v = xv[i]!;
    count[o]! += 1;
    if (op === 'max') acc[o] = Number.isNaN(acc[o]!) || Number.isNaN(v) ? NaN : Math.max(acc[o]!, v);
    else acc[o]! += v;
  }
  const vals = acc.map((s, o) => (op === 'mean' ? (count[o] === 0 ? NaN : s / count[o]!) : s));
  return { shape: outShape, values: vals };
}

/** Axes arguments: undefined, [], a number, or a list, with negative forms; and their flags. */
const axesArb = (rank: number): fc.Arbitrary<{ axes: number | number[] | undefined; flags: boolean[] }> => {
  if (rank === 0) return fc.constantFrom({ axes: undefined, flags: [] }, { axes: [], flags: [] });
  return fc.oneof(
    fc.constant({ axes: undefined, flags: new Array<boolean>(rank).fill(true) }),
    fc.constant({ axes: [] as number[], flags: new Array<boolean>(rank).fill(true) }),
    fc.tuple(fc.integer({ min: 0, max: rank - 1 }), fc.boolean()).map(([a, negative]) => ({
      axes: negative ? a - rank : a,
      flags: Array.from({ length: rank }, (_, k) => k === a),
    })),
    fc.tuple(fc.subarray([...Array(rank).keys()], { minLength: 1 }), fc.array(fc.boolean(), { minLength: rank, maxLength: rank }), fc.boolean()).map(([set, negative, reverse]) => {
      const list = set.map((a) => (negative[a] ? a - rank : a));
      return { axes: reverse ? list.reverse() : list, flags: Array.from({ length: rank }, (_, k) => set.includes(k)) };
    }),
  );
};

describe('properties: reductions', () => {
  it('sum/mean/max over any axes, with keepDims, match float64 (empty sums 0, empty means NaN, max over an empty axis E_ARG)', () => {
    const caseArb = anyShapeArb().chain((shape) => fc.record({ shape: fc.constant(shape), axes: axesArb(shape.length) }));
    fc.assert(
      fc.property(fc.constantFrom<ReduceName>('sum', 'mean', 'max'), floatDTypeArb, caseArb, fc.boolean(), fc.constantFrom<ValueSpec['kind']>('grid', 'special'), fc.integer(), (op, dtype, { shape, axes }, keepDims, kind, seed) =>
        noLeak(() => {
          // Grid values: sums of a few are exact in float32 (so the float64 reference is exact too).
          const x = random(shape, dtype, { seed, kind });
          const ref = reduceRef(op, shape, read(x), axes.flags, keepDims);
          const emptyAxis = shape.some((d, a) => axes.flags[a] && d === 0);
          const r = attempt(() => REDUCE[op](x, axes.axes, keepDims));
          const label = `${op}(${x.describe()}, ${show(axes.axes)}, ${keepDims})`;
          if (op === 'max' && emptyAxis && sizeOf(ref.shape) > 0) {
            expect(r.ok ? 'a result' : r.error.code, label).toBe('E_ARG');
            return;
          }
          if (!r.ok) throw new Error(`${label} failed: ${r.error.code}: ${r.error.message}`);
          expectTensor(r.value, ref.shape, dtype, ref.values.map((v) => roundTo(dtype, v)), tolerance(dtype, 'reduction'), label);
        }),
      ),
      params(1200),
    );
  });

  it('reductions refuse out-of-range, repeated and non-integer axes and non-boolean keepDims (E_ARG), integer dtypes (E_DTYPE), disposed tensors (E_DISPOSED)', () => {
    const fault = fc.constantFrom('out of range', 'repeated', 'bad number', 'keepDims', 'integer', 'disposed');
    fc.assert(
      fc.property(fc.constantFrom<ReduceName>('sum', 'mean', 'max'), shapeArb(1, 4), fault, fc.nat(), badNumberArb, intDTypeArb, (op, shape, f, k, bad, it) =>
        noLeak(() => {
          const rank = shape.length;
          const [x, xi, xd] = [kx.zeros(shape), kx.zeros(shape, { dtype: it }), disposed(shape)];
          const fn = REDUCE[op];
          switch (f) {
            case 'out of range': {
              const axis = [rank, -rank - 1, rank + 3, -rank - 7][k % 4]!;
              fails(() => fn(x, k % 2 ? axis : [0, axis].slice(rank > 1 ? 0 : 1)), 'E_ARG');
              break;
            }
            case 'repeated': {
              const a = k % rank;
              fails(() => fn(x, [a, k % 2 ? a : a - rank]), 'E_ARG');
              break;
            }
            case 'bad number':
              if (Array.isArray(bad)) fails(() => fn(x, [bad as unknown as number]), 'E_ARG');
              else fails(() => fn(x, bad as number), 'E_ARG');
              break;
            case 'keepDims':
              fails(() => fn(x, undefined, [1, 'true', null, {}][k % 4] as boolean), 'E_ARG');
              break;
            case 'integer':
              fails(() => fn(xi), 'E_DTYPE');
              break;
            case 'disposed':
              // (max over an empty axis may be refused for that first)
              fails(() => fn(xd), ...(op === 'max' && sizeOf(shape) === 0 ? (['E_DISPOSED', 'E_ARG'] as const) : (['E_DISPOSED'] as const)));
              break;
          }
        }),
      ),
      params(450),
    );
  });
});

// ---- softmax / logSoftmax ------------------------------------------------------------------------------

/** softmax or log-softmax of xv (shape) along axis, in float64 (stable: shifted by the max). */
function softmaxRef(shape: readonly number[], xv: readonly number[], axis: number, log: boolean): number[] {
  const C = shape[axis]!;
  const inner = sizeOf(shape.slice(axis + 1));
  const outer = sizeOf(shape.slice(0, axis));
  const out = new Array<number>(xv.length);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < inner; j++) {
      const at = (c: number) => (o * C + c) * inner + j;
      let m = -Infinity;
      for (let c = 0; c < C; c++) m = Number.isNaN(xv[at(c)]!) || Number.isNaN(m) ? NaN : Math.max(m, xv[at(c)]!);
      let s = 0;
      for (let c = 0; c < C; c++) s += Math.exp(xv[at(c)]! - m);
      for (let c = 0; c < C; c++) out[at(c)] = log ? xv[at(c)]! - m - Math.log(s) : Math.exp(xv[at(c)]! - m) / s;
    }
  }
  return out;
}

describe('properties: softmax and logSoftmax', () => {
  it('softmax/logSoftmax along any axis match float64 (an all −inf slice gives NaN, −inf entries give 0 / −inf)', () => {
    const caseArb = anyShapeArb(1).chain((shape) => fc.record({ shape: fc.constant(shape), axis: fc.integer({ min: -shape.length, max: shape.length - 1 }) }));
    fc.assert(
      fc.property(fc.boolean(), floatDTypeArb, caseArb, valueSpecArb(['grid', 'wide', 'special']), fc.constantFrom(4, 40), (log, dtype, { shape, axis }, spec, scale) =>
        noLeak(() => {
          const x = random(shape, dtype, spec, scale);
          const a = axis < 0 ? axis + shape.length : axis;
          const y = succeeds(() => (log ? kx.logSoftmax(x, axis) : kx.softmax(x, axis)));
          const expected = softmaxRef(shape, read(x), a, log).map((v) => roundTo(dtype, v));
          expectTensor(y, shape, dtype, expected, tolerance(dtype), `${log ? 'logSoftmax' : 'softmax'}(${x.describe()}, ${axis})`);
        }),
      ),
      params(900),
    );
  });

  it('softmax/logSoftmax refuse scalars and bad axes (E_ARG), integer dtypes (E_DTYPE), disposed tensors (E_DISPOSED)', () => {
    fc.assert(
      fc.property(fc.boolean(), shapeArb(0, 4), fc.oneof(badNumberArb, fc.integer({ min: 5, max: 9 }), fc.integer({ min: -9, max: -5 })), fc.constantFrom('axis', 'integer', 'disposed'), intDTypeArb, (log, shape, axis, f, it) =>
        noLeak(() => {
          const fn = log ? kx.logSoftmax : kx.softmax;
          const [x, xi, xd] = [kx.zeros(shape), kx.zeros(shape, { dtype: it }), disposed(shape)];
          if (f === 'axis' || shape.length === 0) fails(() => fn(x, (shape.length === 0 ? -1 : axis) as number), 'E_ARG');
          else if (f === 'integer') fails(() => fn(xi), 'E_DTYPE');
          else fails(() => fn(xd), 'E_DISPOSED');
        }),
      ),
      params(300),
    );
  });
});

// ---- cast -------------------------------------------------------------------------------------------------

/** The value `cast` gives for v (a value of `from`) in `to` (ops/cast/math.h's rules, written out). */
function castRef(from: kx.DType, to: kx.DType, v: number): number {
  if (from === to) return v;
  if (to === 'float32' || to === 'float16' || to === 'bfloat16') return roundTo(to, v); // through float32
  if (to === 'int32') {
    if (from === 'uint8') return v;
    const f = Math.fround(v);
    if (Number.isNaN(f)) return 0;
    if (f >= 2147483648) return 2147483647;
    if (f <= -2147483648) return -2147483648;
    return Math.trunc(f);
  }
  // to uint8
  if (from === 'int32') return v & 0xff;
  const f = Math.fround(v);
  if (Number.isNaN(f) || f <= 0) return 0;
  if (f >= 255) return 255;
  return Math.trunc(f);
}

const CAST_EDGES = [0.5, -0.5, 0.9999, -0.9999, 1.5, 2.5, -2.5, 254.5, 255.9, 256, 300, -300, 65504, 65519, 65520, 65536, 1e10, -1e10, 3e38, -3e38, 2147483520, 2147483648, -2147483648, 1e-8, -1e-40, 16777217];
const INT_EDGES = [0, 1, -1, 255, 256, -256, 16777217, 2147483647, -2147483648, 65504, 65520, 123456789];

describe('properties: cast', () => {
  it('cast between every pair of dtypes follows the documented rules exactly (RNE to halves, truncate and saturate to integers, NaN → 0, low byte int32 → uint8)', () => {
    fc.assert(
      fc.property(dtypeArb, dtypeArb, anyShapeArb(), valueSpecArb(['grid', 'wide', 'special']), fc.integer(), (from, to, shape, spec, seed) =>
        noLeak(() => {
          const n = sizeOf(shape);
          const r = ints(n, seed, 0, 1_000_000);
          let src: number[];
          if (from === 'int32') src = r.map((k, i) => (k % 3 === 0 ? INT_EDGES[k % INT_EDGES.length]! * (k % 2 ? -1 : 1) : ints(1, seed + i, -(2 ** 31), 2 ** 31 - 1)[0]!)).map((v) => v | 0);
          else if (from === 'uint8') src = r.map((k) => k % 256);
          else src = values(n, spec, 300).map((v, i) => (r[i]! % 4 === 0 ? CAST_EDGES[r[i]! % CAST_EDGES.length]! * (r[i]! % 8 === 0 ? -1 : 1) : v));
          const x = make(src, shape, from);
          const xv = read(x);
          const y = succeeds(() => kx.cast(x, to), `cast ${x.describe()} to ${to}`);
          if (from === to) expect(y, 'cast to its own dtype returns its input').toBe(x);
          const expected = xv.map((v) => castRef(from, to, v));
          expectTensor(y, shape, to, expected, 0, `cast ${from} → ${to}`);
        }),
      ),
      params(900),
    );
  });

  it('cast refuses unknown dtypes (E_DTYPE), non-tensors (E_ARG) and disposed tensors (E_DISPOSED)', () => {
    fc.assert(
      fc.property(shapeArb(), dtypeArb, fc.constantFrom<unknown>('float64', 'int64', 'Float32', '', null, undefined, 3, {}), notATensorArb, fc.constantFrom('dtype', 'junk', 'disposed'), (shape, dtype, badType, junk, f) =>
        noLeak(() => {
          const x = kx.zeros(shape, { dtype });
          if (f === 'dtype') fails(() => kx.cast(x, badType as kx.DType), 'E_DTYPE');
          else if (f === 'junk') fails(() => kx.cast(junk as kx.Tensor, dtype), 'E_ARG');
          else {
            // A disposed tensor is refused, or (cast to its own dtype) handed back as it is.
            const t = disposed(shape, dtype);
            const other = kx.DTYPES.find((d) => d !== dtype)!;
            fails(() => kx.cast(t, other), 'E_DISPOSED');
          }
        }),
      ),
      params(300),
    );
  });
});

// ---- creation ------------------------------------------------------------------------------------------------

type DataKind = 'number[]' | 'Float32Array' | 'Float64Array' | 'Int32Array' | 'Uint8Array' | 'Uint16Array' | 'number' | 'junk';

/** The values kx.tensor stores for data of this kind converted to dtype (the rules of creation.ts and cast). */
function conversion(kind: DataKind, dtype: kx.DType, v: number): number {
  if (kind === 'Uint16Array') {
    // Raw half bits.
    if (dtype === 'bfloat16') {
      const f = new Float32Array(new Uint32Array([(v & 0xffff) << 16]).buffer)[0]!;
      return f;
    }
    const s = v & 0x8000 ? -1 : 1;
    const e = (v >> 10) & 0x1f;
    const m = v & 0x3ff;
    if (e === 0x1f) return m ? NaN : s * Infinity;
    return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  const integerSource = kind === 'Int32Array' || kind === 'Uint8Array';
  if (dtype === 'int32' || dtype === 'uint8') {
    // Integer data keeps its integer conversion (int32 → uint8: the low byte); float data truncates
    // and saturates like cast.
    if (integerSource) return dtype === 'uint8' ? v & 0xff : v;
    const t = Number.isNaN(v) ? 0 : Math.trunc(v);
    return dtype === 'uint8' ? Math.min(255, Math.max(0, t)) : Math.min(2147483647, Math.max(-2147483648, t));
  }
  return roundTo(dtype, v);
}

describe('properties: tensor creation', () => {
  it('tensor(data, shape, { dtype }): a tensor holding the converted data, or E_SHAPE/E_ARG/E_DTYPE for a length, shape, data or dtype that does not fit', () => {
    const kindArb = fc.constantFrom<DataKind>('number[]', 'Float32Array', 'Float64Array', 'Int32Array', 'Uint8Array', 'Uint16Array', 'number', 'junk');
    const shapeOrBad = fc.oneof(
      { arbitrary: fc.constant(undefined), weight: 2 },
      { arbitrary: shapeArb(0, 3, 3), weight: 4 },
      { arbitrary: fc.constantFrom<unknown>([-1], [2, -3], [1.5], [NaN], [Infinity], null, 5, '3', [[2]], ['2'], [2 ** 60, 0]), weight: 1 },
    );
    const dtypeOrBad = fc.oneof({ arbitrary: fc.constant(undefined), weight: 2 }, { arbitrary: dtypeArb, weight: 4 }, { arbitrary: fc.constantFrom<unknown>('float64', '', null, 1), weight: 1 });
    const junkArb = fc.constantFrom<unknown>('abc', null, { length: 2 }, new DataView(new ArrayBuffer(8)), new BigInt64Array(2), [1, 'x'], true);
    fc.assert(
      fc.property(kindArb, fc.integer({ min: 0, max: 6 }), shapeOrBad, dtypeOrBad, valueSpecArb(['grid', 'wide', 'special']), junkArb, fc.integer(), (kind, len, shape, dtype, spec, junk, seed) =>
        noLeak(() => {
          const raw = values(len, spec, 400).map((v, i) => (i % 3 === 1 ? v * 1e7 : v));
          const r = ints(len, seed, -(2 ** 31), 2 ** 31 - 1);
          let data: unknown;
          let vals: number[];
          switch (kind) {
            case 'number[]': data = raw; vals = raw; break;
            case 'Float32Array': data = Float32Array.from(raw); vals = Array.from(data as Float32Array); break;
            case 'Float64Array': data = Float64Array.from(raw); vals = raw; break;
            case 'Int32Array': data = Int32Array.from(r); vals = Array.from(data as Int32Array); break;
            case 'Uint8Array': data = Uint8Array.from(r.map((v) => v & 0xff)); vals = Array.from(data as Uint8Array); break;
            case 'Uint16Array': data = Uint16Array.from(r.map((v) => v & 0xffff)); vals = Array.from(data as Uint16Array); break;
            case 'number': data = raw[0] ?? 7; vals = [data as number]; break;
            case 'junk': data = junk; vals = []; break;
          }
          // What must happen, worked out independently: every applicable error code.
          const codes = new Set<kx.ErrorCode>();
          const n = kind === 'number' ? 1 : vals.length;
          let dims: readonly number[] | undefined;
          if (kind === 'junk') codes.add('E_ARG').add('E_SHAPE'); // an array of junk may first be the wrong length
          if (dtype !== undefined && !(kx.DTYPES as readonly unknown[]).includes(dtype)) codes.add('E_DTYPE');
          if (shape === undefined) dims = kind === 'number' ? [] : [n];
          else if (Array.isArray(shape) && shape.every((d) => Number.isInteger(d) && d >= 0)) dims = shape as number[];
          else codes.add('E_ARG');
          if (dims?.some((d) => d > 2 ** 53)) codes.add('E_ARG'); // dims past 2^53 are refused even in an empty shape
          if (dims && kind !== 'junk' && sizeOf(dims) !== n) codes.add('E_SHAPE');
          const dt = (dtype ?? (kind === 'Int32Array' ? 'int32' : kind === 'Uint8Array' ? 'uint8' : 'float32')) as kx.DType;
          if (kind === 'Uint16Array' && dt !== 'float16' && dt !== 'bfloat16') codes.add('E_DTYPE');
          const call = () => kx.tensor(data as number[], shape as number[], dtype === undefined ? {} : { dtype: dtype as kx.DType });
          if (codes.size > 0) {
            fails(call, ...codes);
            return;
          }
          const t = succeeds(call, `tensor(${kind} of ${n}, ${show(shape)}, ${show(dtype)})`);
          expectTensor(t, dims!, dt, vals.map((v) => conversion(kind, dt, v)), 0, `tensor(${kind}, ${show(shape)}, ${dt})`);
        }),
      ),
      params(1200),
    );
  });

  it('full/zeros/ones(shape, value, { dtype }) fill with the converted value; a bad shape is E_ARG, a bad value E_ARG, a bad dtype E_DTYPE', () => {
    const shapeOrBad = fc.oneof({ arbitrary: shapeArb(0, 4), weight: 5 }, { arbitrary: fc.constantFrom<unknown>([-1], [2, 1.5], [NaN], null, undefined, 4, 'ab', [2 ** 40, 2 ** 40]), weight: 1 });
    const valueArb = fc.oneof({ arbitrary: fc.double(), weight: 4 }, { arbitrary: fc.constantFrom(0, -0, 300, -1, 2 ** 31, 65520, NaN, Infinity), weight: 2 }, { arbitrary: fc.constantFrom<unknown>('1', null, undefined, [1]), weight: 1 });
    const dtypeOrBad = fc.oneof({ arbitrary: fc.constant(undefined), weight: 1 }, { arbitrary: dtypeArb, weight: 4 }, { arbitrary: fc.constantFrom<unknown>('float64', 0), weight: 1 });
    fc.assert(
      fc.property(fc.constantFrom('full', 'zeros', 'ones'), shapeOrBad, valueArb, dtypeOrBad, (fn, shape, value, dtype) =>
        noLeak(() => {
          const dt = (dtype ?? 'float32') as kx.DType;
          const v = fn === 'zeros' ? 0 : fn === 'ones' ? 1 : value;
          const opts = dtype === undefined ? {} : { dtype: dtype as kx.DType };
          const call = () => (fn === 'full' ? kx.full(shape as number[], value as number, opts) : fn === 'zeros' ? kx.zeros(shape as number[], opts) : kx.ones(shape as number[], opts));
          const codes = new Set<kx.ErrorCode>();
          const shapeOk = Array.isArray(shape) && shape.every((d) => Number.isInteger(d) && d >= 0);
          if (!shapeOk) codes.add('E_ARG');
          else if (sizeOf(shape) > 2 ** 48) codes.add('E_ARG').add('E_OOM');
          if (typeof v !== 'number') codes.add('E_ARG');
          if (!(kx.DTYPES as readonly unknown[]).includes(dt)) codes.add('E_DTYPE');
          if (codes.size > 0) {
            fails(call, ...codes);
            return;
          }
          const t = succeeds(call, `${fn}(${show(shape)}, ${show(v)}, ${show(dtype)})`);
          const dims = shape as number[];
          expectTensor(t, dims, dt, new Array<number>(sizeOf(dims)).fill(conversion('number[]', dt, v as number)), 0, `${fn} ${dt}`);
        }),
      ),
      params(750),
    );
  });

  it('creation functions refuse a non-object options argument or an unknown device with a KexueError', () => {
    fc.assert(
      fc.property(fc.constantFrom<unknown>(null, 5, 'float32', true), fc.constantFrom<unknown>('gpu', 'cuda:x', 'cuda:-1', 3, null), fc.constantFrom('tensor', 'full', 'zeros', 'scalar'), fc.boolean(), (opts, device, fn, badOpts) =>
        noLeak(() => {
          const o = (badOpts ? opts : { device }) as kx.TensorOptions;
          const call = () => (fn === 'tensor' ? kx.tensor([1, 2], [2], o) : fn === 'full' ? kx.full([2], 1, o) : fn === 'zeros' ? kx.zeros([2], o) : kx.scalar(1, o));
          fails(call, 'E_ARG', 'E_NO_CUDA');
        }),
      ),
      params(180),
    );
  });
});

describe('properties: the suites check themselves', () => {
  it('relError is 0 for identical values and Infinity for a non-finite mismatch', () => {
    expect(relError([1, NaN, -Infinity], [1, NaN, -Infinity]).err).toBe(0);
    expect(relError([1, 2], [1, Infinity]).err).toBe(Infinity);
    expect(relError([1, NaN], [1, 2]).err).toBe(Infinity);
  });
});
