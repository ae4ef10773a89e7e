// Property-based tests of the core's ops, part 2: matmul (transposes, batch broadcasting, bias)
// and the shape ops (reshape with −1, permute/transpose, slice, concat, broadcastTo/sumTo). Every
// outcome is a correct result or a KexueError, with no tensor left behind (property_support.ts).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import {
  anyShapeArb,
  badNumberArb,
  broadcastFlat,
  broadcastPairArb,
  broadcastableTo,
  clashingPairArb,
  dimArb,
  disposed,
  dtypeArb,
  expectTensor,
  fails,
  FLOAT_DTYPES,
  floatDTypeArb,
  intDTypeArb,
  noLeak,
  notATensorArb,
  npBroadcast,
  params,
  random,
  read,
  roundTo,
  shapeArb,
  show,
  sizeOf,
  stridesOf,
  succeeds,
  tolerance,
  unravel,
  valueSpecArb,
} from './property_support.js';

// ---- matmul ---------------------------------------------------------------------------------------

interface MatmulCase {
  batchA: number[];
  batchB: number[];
  m: number;
  k: number;
  n: number;
  transA: boolean;
  transB: boolean;
  bias: boolean;
}

/** Matrix sizes: mostly 0–5, sometimes past the BLAS and tiling thresholds. */
const matDimArb = fc.oneof({ arbitrary: dimArb(5), weight: 6 }, { arbitrary: fc.constantFrom(17, 64, 129), weight: 1 });

const matmulCaseArb: fc.Arbitrary<MatmulCase> = fc
  .record({
    batch: fc.oneof({ arbitrary: shapeArb(0, 2, 3).chain((out) => fc.tuple(broadcastableTo(out), broadcastableTo(out))), weight: 4 }, { arbitrary: fc.constant<[number[], number[]]>([[], []]), weight: 1 }),
    m: matDimArb,
    k: matDimArb,
    n: matDimArb,
    transA: fc.boolean(),
    transB: fc.boolean(),
    bias: fc.boolean(),
  })
  .map(({ batch: [batchA, batchB], ...rest }) => ({ batchA, batchB, ...rest }))
  // Keep the float64 reference cheap.
  .filter((c) => sizeOf(npBroadcast(c.batchA, c.batchB)!) * c.m * c.n * Math.max(c.k, 1) <= 300_000);

function operandShapes(c: MatmulCase): [number[], number[]] {
  return [
    [...c.batchA, ...(c.transA ? [c.k, c.m] : [c.m, c.k])],
    [...c.batchB, ...(c.transB ? [c.n, c.k] : [c.k, c.n])],
  ];
}

/** op(A)·op(B) + bias over broadcast batches, in float64. */
function matmulRef(c: MatmulCase, av: number[], bv: number[], biasv: number[] | null): { shape: number[]; values: number[] } {
  const batch = npBroadcast(c.batchA, c.batchB)!;
  const { m, k, n } = c;
  const out = new Array<number>(sizeOf(batch) * m * n);
  const aMat = m * k;
  const bMat = k * n;
  for (let t = 0; t < sizeOf(batch); t++) {
    const idx = unravel(t, batch);
    const ao = broadcastFlat(idx, c.batchA) * aMat;
    const bo = broadcastFlat(idx, c.batchB) * bMat;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = biasv ? biasv[j]! : 0;
        for (let p = 0; p < k; p++) {
          const a = av[ao + (c.transA ? p * m + i : i * k + p)]!;
          const b = bv[bo + (c.transB ? j * k + p : p * n + j)]!;
          s += a * b;
        }
        out[(t * m + i) * n + j] = s;
      }
    }
  }
  return { shape: [...batch, m, n], values: out };
}

describe('properties: matmul', () => {
  it('matmul(a, b, { transA, transB, bias }) gives [...broadcast batch, m, n] and op(a)·op(b) + bias', () => {
    fc.assert(
      fc.property(floatDTypeArb, matmulCaseArb, valueSpecArb(['grid', 'wide']), fc.boolean(), (dtype, c, spec, explicitFlags) =>
        noLeak(() => {
          const [sa, sb] = operandShapes(c);
          const a = random(sa, dtype, spec);
          const b = random(sb, dtype, { ...spec, seed: spec.seed + 1 });
          const bias = c.bias ? random([c.n], dtype, { ...spec, seed: spec.seed + 2 }) : undefined;
          const options = explicitFlags || c.transA || c.transB || bias ? { transA: c.transA, transB: c.transB, ...(bias ? { bias } : {}) } : undefined;
          const label = `matmul(${a.describe()}, ${b.describe()}, ${show({ transA: c.transA, transB: c.transB, bias: !!bias })})`;
          const y = succeeds(() => kx.matmul(a, b, options), label);
          const ref = matmulRef(c, read(a), read(b), bias ? read(bias) : null);
          expectTensor(y, ref.shape, dtype, ref.values.map((v) => roundTo(dtype, v)), tolerance(dtype, 'reduction'), label);
        }),
      ),
      params(750),
    );
  });

  it('matmul refuses rank < 2, mismatched inner dims, clashing batches and bad biases (E_SHAPE), mixed or integer dtypes (E_DTYPE), non-tensors and bad options (E_ARG), disposed tensors (E_DISPOSED)', () => {
    const fault = fc.constantFrom('rank', 'inner', 'batch', 'bias shape', 'bias dtype', 'mixed dtypes', 'integer', 'not a tensor', 'bias not a tensor', 'options', 'disposed');
    fc.assert(
      fc.property(fault, floatDTypeArb, intDTypeArb, fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), clashingPairArb, notATensorArb, fc.boolean(), fc.nat(), (f, dt, it, m, k, n, [c1, c2], junk, first, pick) =>
        noLeak(() => {
          let a: unknown = kx.zeros([m, k], { dtype: dt });
          let b: unknown = kx.zeros([k, n], { dtype: dt });
          let options: unknown = undefined;
          let codes: kx.ErrorCode[];
          switch (f) {
            case 'rank': {
              const small = [[], [k]][pick % 2]!;
              if (first) a = kx.zeros(small, { dtype: dt });
              else b = kx.zeros(small, { dtype: dt });
              codes = ['E_SHAPE'];
              break;
            }
            case 'inner':
              b = kx.zeros([k + 1 + (pick % 3), n], { dtype: dt });
              codes = ['E_SHAPE'];
              break;
            case 'batch':
              a = kx.zeros([...c1, m, k], { dtype: dt });
              b = kx.zeros([...c2, k, n], { dtype: dt });
              codes = ['E_SHAPE'];
              break;
            case 'bias shape':
              options = { bias: kx.zeros([[n + 1], [1, n], [], [n, 1]][pick % 4]!, { dtype: dt }) };
              codes = ['E_SHAPE'];
              break;
            case 'bias dtype':
              options = { bias: kx.zeros([n], { dtype: FLOAT_DTYPES.find((d) => d !== dt)! }) };
              codes = ['E_SHAPE', 'E_DTYPE'];
              break;
            case 'mixed dtypes':
              b = kx.zeros([k, n], { dtype: FLOAT_DTYPES.find((d) => d !== dt)! });
              codes = ['E_DTYPE'];
              break;
            case 'integer':
              a = kx.zeros([m, k], { dtype: it });
              b = kx.zeros([k, n], { dtype: it });
              codes = ['E_DTYPE'];
              break;
            case 'not a tensor':
              if (first) a = junk;
              else b = junk;
              codes = ['E_ARG'];
              break;
            case 'bias not a tensor':
              if (junk === null || junk === undefined) return; // no bias
              options = { bias: junk };
              codes = ['E_ARG'];
              break;
            case 'options':
              options = [null, 5, 'transA', true][pick % 4];
              codes = ['E_ARG'];
              break;
            case 'disposed':
              if (first) a = disposed([m, k], dt);
              else b = disposed([k, n], dt);
              codes = ['E_DISPOSED'];
              break;
          }
          fails(() => kx.matmul(a as kx.Tensor, b as kx.Tensor, options as kx.MatmulOptions), ...codes);
        }),
      ),
      params(750),
    );
  });
});

// ---- reshape ----------------------------------------------------------------------------------------

/** Random shapes of exactly `size` elements (dims grouped from its prime factors, with 1s; size 0 needs a 0). */
function factorShapeArb(size: number): fc.Arbitrary<number[]> {
  const factors: number[] = [];
  let rest = size;
  for (let p = 2; rest > 1 && p * p <= rest; p++) while (rest % p === 0) (factors.push(p), (rest /= p));
  if (rest > 1) factors.push(rest);
  if (size === 0) factors.push(0);
  return fc
    .tuple(fc.integer({ min: Math.min(factors.length, 1), max: 4 }), fc.array(fc.nat(), { minLength: factors.length, maxLength: factors.length }), fc.array(fc.nat(), { minLength: 6, maxLength: 6 }))
    .map(([rank, slots, extra]) => {
      if (rank === 0) return [];
      const dims = new Array<number>(rank).fill(1);
      factors.forEach((f, i) => (dims[slots[i]! % rank] *= f));
      // size 0: other dims may be anything.
      if (size === 0) for (let a = 0; a < rank; a++) if (dims[a] !== 0) dims[a] = 1 + (extra[a]! % 3);
      return dims;
    });
}

describe('properties: reshape', () => {
  it('reshape to any shape of the same size (one dim may be −1 where it can be inferred) keeps the elements in order', () => {
    const caseArb = shapeArb().chain((shape) => fc.record({ shape: fc.constant(shape), target: factorShapeArb(sizeOf(shape)), infer: fc.option(fc.nat(), { nil: undefined }) }));
    fc.assert(
      fc.property(dtypeArb, caseArb, valueSpecArb(['grid', 'special']), (dtype, { shape, target, infer }, spec) =>
        noLeak(() => {
          const x = random(shape, dtype, spec);
          const given = [...target];
          if (infer !== undefined && target.length > 0) given[infer % target.length] = -1;
          const known = given.filter((d) => d !== -1);
          const inferable = !given.includes(-1) || sizeOf(known) > 0;
          if (!inferable) {
            // −1 next to a 0 dim has no unique value (NumPy refuses it too).
            fails(() => kx.reshape(x, given), 'E_SHAPE');
            return;
          }
          const xv = read(x);
          const y = succeeds(() => kx.reshape(x, given), `reshape(${x.describe()}, ${show(given)})`);
          // A view: it keeps the storage alive after x is disposed, and x's storage is not copied.
          x.dispose();
          expectTensor(y, target, dtype, xv, 0, 'reshape');
        }),
      ),
      params(600),
    );
  });

  it('reshape refuses a size that differs or cannot be inferred, two −1 (E_SHAPE), dims below −1 or not integers, a non-array, a non-tensor (E_ARG), a disposed tensor (E_DISPOSED)', () => {
    const fault = fc.constantFrom('size', 'two -1', 'indivisible', 'bad dim', 'not an array', 'not a tensor', 'disposed');
    fc.assert(
      fc.property(fault, shapeArb(1, 3), fc.integer({ min: 2, max: 5 }), badNumberArb, notATensorArb, (f, shape, extra, bad, junk) =>
        noLeak(() => {
          const x = kx.zeros(shape);
          const size = sizeOf(shape);
          switch (f) {
            case 'size':
              fails(() => kx.reshape(x, [size + extra]), 'E_SHAPE');
              break;
            case 'two -1':
              fails(() => kx.reshape(x, [-1, -1]), 'E_SHAPE');
              break;
            case 'indivisible':
              if (size > 0 && size % extra !== 0) fails(() => kx.reshape(x, [-1, extra]), 'E_SHAPE');
              break;
            case 'bad dim':
              fails(() => kx.reshape(x, [bad === null || typeof bad !== 'number' || Number.isFinite(bad) ? -2 - extra : bad, size]), 'E_ARG');
              fails(() => kx.reshape(x, [bad as number]), 'E_ARG', 'E_SHAPE');
              break;
            case 'not an array':
              fails(() => kx.reshape(x, [null, 5, '2', {}][extra % 4] as number[]), 'E_ARG');
              break;
            case 'not a tensor':
              fails(() => kx.reshape(junk as kx.Tensor, [1]), 'E_ARG');
              break;
            case 'disposed': {
              const d = disposed(shape);
              fails(() => kx.reshape(d, [...shape]), 'E_DISPOSED');
              break;
            }
          }
        }),
      ),
      params(450),
    );
  });
});

// ---- permute / transpose ------------------------------------------------------------------------------------------

/** x (shape, values) with output axis i = input axis perm[i]. */
function permuteRef(shape: readonly number[], xv: readonly number[], perm: readonly number[]): { shape: number[]; values: number[] } {
  const outShape = perm.map((p) => shape[p]!);
  const st = stridesOf(shape);
  const values = Array.from({ length: xv.length }, (_, i) => {
    const idx = unravel(i, outShape);
    let off = 0;
    idx.forEach((v, a) => (off += v * st[perm[a]!]!));
    return xv[off]!;
  });
  return { shape: outShape, values };
}

describe('properties: permute and transpose', () => {
  it('permute by any permutation (negative entries allowed) and transpose of any two axes move every element exactly', () => {
    const caseArb = anyShapeArb(0, 24).chain((shape) =>
      fc.record({
        shape: fc.constant(shape),
        perm: fc.shuffledSubarray([...shape.keys()], { minLength: shape.length, maxLength: shape.length }),
        negative: fc.array(fc.boolean(), { minLength: shape.length, maxLength: shape.length }),
        axes: shape.length === 0 ? fc.constant<[number, number]>([0, 0]) : fc.tuple(fc.integer({ min: -shape.length, max: shape.length - 1 }), fc.integer({ min: -shape.length, max: shape.length - 1 })),
      }),
    );
    fc.assert(
      fc.property(dtypeArb, caseArb, valueSpecArb(['grid', 'special']), (dtype, { shape, perm, negative, axes }, spec) =>
        noLeak(() => {
          const x = random(shape, dtype, spec);
          const xv = read(x);
          const given = perm.map((p, i) => (negative[i] ? p - shape.length : p));
          const y = succeeds(() => kx.permute(x, given), `permute(${x.describe()}, ${show(given)})`);
          const ref = permuteRef(shape, xv, perm);
          expectTensor(y, ref.shape, dtype, ref.values, 0, `permute ${show(given)}`);
          if (shape.length === 0) return;
          const [a0, a1] = axes.map((a) => (a < 0 ? a + shape.length : a)) as [number, number];
          const swap = [...shape.keys()];
          [swap[a0], swap[a1]] = [a1, a0];
          const t = succeeds(() => kx.transpose(x, axes[0], axes[1]), `transpose(${x.describe()}, ${axes})`);
          const tref = permuteRef(shape, xv, swap);
          expectTensor(t, tref.shape, dtype, tref.values, 0, `transpose ${axes}`);
        }),
      ),
      params(600),
    );
  });

  it('permute refuses lists that are not a permutation of the axes, transpose axes out of range (E_ARG); non-tensors (E_ARG), disposed tensors (E_DISPOSED)', () => {
    const fault = fc.constantFrom('length', 'repeated', 'out of range', 'bad entry', 'not an array', 'transpose axis', 'not a tensor', 'disposed');
    fc.assert(
      fc.property(fault, shapeArb(1, 4), badNumberArb, notATensorArb, fc.nat(), (f, shape, bad, junk, k) =>
        noLeak(() => {
          const x = kx.zeros(shape);
          const r = shape.length;
          const id = [...shape.keys()];
          const call: Record<string, () => unknown> = {
            length: () => kx.permute(x, k % 2 ? [...id, r] : id.slice(1)),
            repeated: () => kx.permute(x, r === 1 ? [0, 0] : [...id.slice(1), id[1]!]),
            'out of range': () => kx.permute(x, [...id.slice(1), [r, -r - 1, r + 5][k % 3]!]),
            'bad entry': () => kx.permute(x, [...id.slice(1), bad as number]),
            'not an array': () => kx.permute(x, [null, 0, '0', {}][k % 4] as number[]),
            'transpose axis': () => kx.transpose(x, 0, [r, -r - 1, NaN, 0.5][k % 4]!),
            'not a tensor': () => kx.permute(junk as kx.Tensor, []),
          };
          if (f === 'disposed') {
            const d = disposed(shape);
            fails(() => kx.permute(d, id), 'E_DISPOSED');
          } else fails(call[f]!, 'E_ARG');
        }),
      ),
      params(450),
    );
  });
});

// ---- slice --------------------------------------------------------------------------------------------------------

describe('properties: slice', () => {
  it('slice(x, begin, size) with begin in [0, dim] and size in [−1, dim − begin] copies exactly that box', () => {
    const caseArb = fc.oneof(shapeArb(0, 4, 5), anyShapeArb()).chain((shape) =>
      fc.record({
        shape: fc.constant(shape),
        box: fc.tuple(...shape.map((d) => fc.integer({ min: 0, max: d }).chain((b) => fc.tuple(fc.constant(b), fc.integer({ min: -1, max: d - b }))))),
      }),
    );
    fc.assert(
      fc.property(dtypeArb, caseArb, valueSpecArb(['grid', 'special']), (dtype, { shape, box }, spec) =>
        noLeak(() => {
          const x = random(shape, dtype, spec);
          const xv = read(x);
          const begin = box.map(([b]) => b);
          const size = box.map(([, s]) => s);
          const out = size.map((s, a) => (s === -1 ? shape[a]! - begin[a]! : s));
          const y = succeeds(() => kx.slice(x, begin, size), `slice(${x.describe()}, ${show(begin)}, ${show(size)})`);
          const st = stridesOf(shape);
          const expected = Array.from({ length: sizeOf(out) }, (_, i) => {
            const idx = unravel(i, out);
            return xv[idx.reduce((o, v, a) => o + (v + begin[a]!) * st[a]!, 0)]!;
          });
          expectTensor(y, out, dtype, expected, 0, 'slice');
        }),
      ),
      params(600),
    );
  });

  it('slice refuses boxes that do not fit, wrong lengths, non-integers (E_ARG), non-tensors (E_ARG), disposed tensors (E_DISPOSED)', () => {
    const fault = fc.constantFrom('begin < 0', 'begin > dim', 'too long', 'size < -1', 'length', 'bad number', 'not a tensor', 'disposed');
    fc.assert(
      fc.property(fault, shapeArb(1, 4), fc.nat(), badNumberArb, notATensorArb, (f, shape, k, bad, junk) =>
        noLeak(() => {
          const x = kx.zeros(shape);
          const r = shape.length;
          const a = k % r;
          const begin = new Array<number>(r).fill(0);
          const size = [...shape];
          switch (f) {
            case 'begin < 0': begin[a] = -1 - (k % 3); break;
            case 'begin > dim': begin[a] = shape[a]! + 1 + (k % 3); size[a] = -1; break;
            case 'too long': size[a] = shape[a]! + 1; break;
            case 'size < -1': size[a] = -2 - (k % 3); break;
            case 'length': begin.push(0); break;
            case 'bad number': (k % 2 ? begin : size)[a] = bad as number; break;
            case 'not a tensor': fails(() => kx.slice(junk as kx.Tensor, [0], [1]), 'E_ARG'); return;
            case 'disposed': {
              const d = disposed(shape);
              fails(() => kx.slice(d, begin, size), 'E_DISPOSED');
              return;
            }
          }
          fails(() => kx.slice(x, begin, size), 'E_ARG');
        }),
      ),
      params(450),
    );
  });
});

// ---- concat ---------------------------------------------------------------------------------------------------------

describe('properties: concat', () => {
  it('concat of 1–4 tensors along any axis (negative allowed) joins them in order', () => {
    const caseArb = anyShapeArb(1, 24).chain((shape) =>
      fc.record({
        shape: fc.constant(shape),
        axis: fc.integer({ min: -shape.length, max: shape.length - 1 }),
        lengths: fc.array(dimArb(4), { minLength: 1, maxLength: 4 }),
      }),
    );
    fc.assert(
      fc.property(dtypeArb, caseArb, valueSpecArb(['grid', 'special']), (dtype, { shape, axis, lengths }, spec) =>
        noLeak(() => {
          const ax = axis < 0 ? axis + shape.length : axis;
          const parts = lengths.map((len, i) => random(shape.map((d, a) => (a === ax ? len : d)), dtype, { ...spec, seed: spec.seed + i }));
          const y = succeeds(() => kx.concat(parts, axis), `concat(${parts.map((p) => p.describe()).join(', ')}; ${axis})`);
          const out = shape.map((d, a) => (a === ax ? lengths.reduce((s, l) => s + l, 0) : d));
          const outer = sizeOf(shape.slice(0, ax));
          const inner = sizeOf(shape.slice(ax + 1));
          const expected: number[] = [];
          const vals = parts.map(read);
          for (let o = 0; o < outer; o++) parts.forEach((_, i) => expected.push(...vals[i]!.slice(o * lengths[i]! * inner, (o + 1) * lengths[i]! * inner)));
          expectTensor(y, out, dtype, expected, 0, 'concat');
        }),
      ),
      params(600),
    );
  });

  it('concat refuses an empty or non-array list and bad axes (E_ARG), mixed dtypes (E_DTYPE), mismatched shapes and scalars (E_SHAPE), non-tensors (E_ARG), disposed tensors (E_DISPOSED)', () => {
    const fault = fc.constantFrom('empty', 'not an array', 'axis', 'dtypes', 'dims', 'ranks', 'scalars', 'element', 'disposed');
    fc.assert(
      fc.property(fault, shapeArb(1, 3, 3), dtypeArb, badNumberArb, notATensorArb, fc.nat(), (f, shape, dtype, bad, junk, k) =>
        noLeak(() => {
          const x = kx.zeros(shape, { dtype });
          const r = shape.length;
          const other = kx.DTYPES.find((d) => d !== dtype)!;
          const y = {
            dims: kx.zeros(shape.map((d, a) => (a === (k % r === 0 ? 1 % r : 0) && r > 1 ? d + 1 : d)), { dtype }),
            ranks: kx.zeros([...shape, 1], { dtype }),
            dtypes: kx.zeros(shape, { dtype: other }),
            scalar: kx.zeros([], { dtype }),
            disposed: disposed(shape, dtype),
          };
          switch (f) {
            case 'empty': fails(() => kx.concat([], 0), 'E_ARG'); break;
            case 'not an array': fails(() => kx.concat([null, x, 'x', {}][k % 4] as kx.Tensor[], 0), 'E_ARG'); break;
            case 'axis': fails(() => kx.concat([x, x], [r, -r - 1, r + 2][k % 3]!), 'E_ARG'); fails(() => kx.concat([x], bad as number), 'E_ARG'); break;
            case 'dtypes': fails(() => kx.concat([x, y.dtypes], 0), 'E_DTYPE'); break;
            case 'dims': if (r > 1) fails(() => kx.concat([x, y.dims], k % r === 0 ? 0 : 1), 'E_SHAPE'); break;
            case 'ranks': fails(() => kx.concat([x, y.ranks], 0), 'E_SHAPE'); break;
            case 'scalars': fails(() => kx.concat([y.scalar, y.scalar], 0), 'E_SHAPE'); break;
            case 'element': fails(() => kx.concat([x, junk as kx.Tensor], 0), 'E_ARG'); break;
            case 'disposed': fails(() => kx.concat([x, y.disposed], 0), 'E_DISPOSED'); break;
          }
        }),
      ),
      params(450),
    );
  });
});

// ---- broadcastTo / sumTo ------------------------------------------------------------------------------------------------

describe('properties: broadcastTo and sumTo', () => {
  it('broadcastTo repeats along broadcast axes (any dtype) and sumTo folds back (floats), both by NumPy rules', () => {
    const caseArb = anyShapeArb().chain((out) => fc.record({ out: fc.constant(out), from: broadcastableTo(out) }));
    fc.assert(
      fc.property(dtypeArb, caseArb, valueSpecArb(['grid']), (dtype, { out, from }, spec) =>
        noLeak(() => {
          const x = random(from, dtype, spec);
          const xv = read(x);
          const y = succeeds(() => kx.broadcastTo(x, out), `broadcastTo(${x.describe()}, ${show(out)})`);
          expectTensor(y, out, dtype, Array.from({ length: sizeOf(out) }, (_, i) => xv[broadcastFlat(unravel(i, out), from)]!), 0, 'broadcastTo');
          if (!kx.isFloating(dtype)) return;
          const big = random(out, dtype, { ...spec, seed: spec.seed + 1 });
          const bv = read(big);
          const s = succeeds(() => kx.sumTo(big, from), `sumTo(${big.describe()}, ${show(from)})`);
          const acc = new Array<number>(sizeOf(from)).fill(0);
          bv.forEach((v, i) => (acc[broadcastFlat(unravel(i, out), from)]! += v));
          expectTensor(s, from, dtype, acc.map((v) => roundTo(dtype, v)), tolerance(dtype, 'reduction'), 'sumTo');
        }),
      ),
      params(450),
    );
  });

  it('broadcastTo/sumTo refuse shapes that do not broadcast (E_SHAPE) and bad shapes (E_ARG)', () => {
    fc.assert(
      fc.property(clashingPairArb, badNumberArb, fc.boolean(), (pair, bad, sum) =>
        noLeak(() => {
          const [from, to] = pair;
          const x = kx.zeros(sum ? to : from);
          const target = sum ? from : to;
          // A clash in an aligned dim, or a target of lower rank, does not broadcast.
          if (npBroadcast(from, to) === null) fails(() => (sum ? kx.sumTo(x, target) : kx.broadcastTo(x, target)), 'E_SHAPE');
          fails(() => (sum ? kx.sumTo(x, [bad as number]) : kx.broadcastTo(x, [bad as number])), 'E_ARG', 'E_SHAPE');
        }),
      ),
      params(300),
    );
  });
});

// Shapes are the same objects the API takes: make sure the arbitraries cover 0-size and rank-0 cases.
describe('properties: generators', () => {
  it('broadcast pairs include 0-size and rank-0 shapes, and all pairs broadcast', () => {
    const seen = { zero: false, scalar: false };
    fc.assert(
      fc.property(broadcastPairArb, ([a, b]) => {
        expect(npBroadcast(a, b)).not.toBeNull();
        if (sizeOf(a) === 0 || sizeOf(b) === 0) seen.zero = true;
        if (a.length === 0 || b.length === 0) seen.scalar = true;
      }),
      params(900),
    );
    expect(seen).toEqual({ zero: true, scalar: true });
    fc.assert(
      fc.property(clashingPairArb, ([a, b]) => {
        expect(npBroadcast(a, b)).toBeNull();
      }),
      params(900),
    );
  });
});
