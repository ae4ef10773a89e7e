// Property-based tests of the core's ops, part 3: layerNorm/rmsNorm (and the fused tier's
// residual norms and bias+GELU), embedding, crossEntropy, attention, rope and dropout. Every outcome
// is a correct result (against a float64 reference) or a KexueError, with no tensor left behind
// (property_support.ts).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import {
  anyShapeArb,
  badNumberArb,
  broadcastFlat,
  broadcastableTo,
  dimArb,
  disposed,
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
  params,
  random,
  read,
  roundTo,
  shapeArb,
  show,
  sizeOf,
  succeeds,
  tolerance,
  unravel,
  valueSpecArb,
} from './property_support.js';

// ---- layerNorm / rmsNorm (and the residual norms) -------------------------------------------------

/**
 * layerNorm (or rmsNorm) of each row of D in float64, and the scale its float32 error is relative
 * to: x·rstd·γ before the centring (x − mean cancels in float32 when a row's spread is small
 * against its values, as in PyTorch), at least 1.
 */
function normRef(kind: 'layer' | 'rms', xv: readonly number[], d: number, gamma: number[] | null, beta: number[] | null, eps: number): { values: number[]; scale: number } {
  const out = new Array<number>(xv.length);
  let scale = 1;
  const g = gamma ? Math.max(1, maxAbs(gamma)) : 1;
  for (let r = 0; r * d < xv.length; r++) {
    const row = xv.slice(r * d, (r + 1) * d);
    const mean = kind === 'layer' ? row.reduce((s, v) => s + v, 0) / d : 0;
    const ms = row.reduce((s, v) => s + (v - mean) * (v - mean), 0) / d;
    const rstd = 1 / Math.sqrt(ms + eps);
    scale = Math.max(scale, maxAbs(row) * rstd * g);
    row.forEach((v, j) => (out[r * d + j] = (v - mean) * rstd * (gamma ? gamma[j]! : 1) + (beta ? beta[j]! : 0)));
  }
  return { values: out, scale };
}

const epsArb = fc.constantFrom(1e-5, 1e-6, 1e-3, 0.1, 1);

describe('properties: layerNorm and rmsNorm', () => {
  it('layerNorm/rmsNorm over the last axis, with or without gamma/beta, match float64; addLayerNorm/addRmsNorm are the norm of the rounded sum', () => {
    fc.assert(
      fc.property(fc.constantFrom<'layer' | 'rms'>('layer', 'rms'), floatDTypeArb, anyShapeArb(1), valueSpecArb(['grid', 'wide']), fc.boolean(), fc.boolean(), fc.option(epsArb, { nil: undefined }), fc.boolean(), (kind, dtype, shape, spec, withGamma, withBeta, eps, residual) =>
        noLeak(() => {
          const d = shape[shape.length - 1]!;
          const x = random(shape, dtype, spec);
          const res = residual ? random(shape, dtype, { ...spec, seed: spec.seed + 3 }) : null;
          const gamma = withGamma ? random([d], dtype, { ...spec, seed: spec.seed + 1 }) : null;
          const beta = withBeta && kind === 'layer' ? random([d], dtype, { ...spec, seed: spec.seed + 2 }) : null;
          const e = eps ?? (kind === 'layer' ? 1e-5 : 1e-6);
          const label = `${residual ? 'add' : ''}${kind}Norm(${x.describe()}, gamma ${!!gamma}, beta ${!!beta}, eps ${eps})`;
          let y: kx.Tensor;
          let summed = read(x);
          if (res) {
            const out = succeeds(() => (kind === 'layer' ? kx.addLayerNorm(x, res, gamma, beta, e) : kx.addRmsNorm(x, res, gamma, e)), label);
            const rv = read(res);
            summed = summed.map((v, i) => roundTo(dtype, v + rv[i]!)); // the sum is stored in x's dtype
            expectTensor(out.sum, shape, dtype, summed, 0, `${label} sum`);
            y = out.y;
          } else {
            y = succeeds(() => (kind === 'layer' ? (eps === undefined ? kx.layerNorm(x, gamma, beta) : kx.layerNorm(x, gamma, beta, eps)) : eps === undefined ? kx.rmsNorm(x, gamma) : kx.rmsNorm(x, gamma, eps)), label);
          }
          const ref = normRef(kind, summed, d, gamma && read(gamma), beta && read(beta), e);
          expectTensor(y, shape, dtype, ref.values.map((v) => roundTo(dtype, v)), tolerance(dtype), label, ref.scale);
        }),
      ),
      params(900),
    );
  });

  it('the norms refuse scalars and parameters of the wrong shape (E_SHAPE) or dtype (E_DTYPE), bad eps (E_ARG), integer x (E_DTYPE), non-tensors (E_ARG), disposed tensors (E_DISPOSED)', () => {
    const fault = fc.constantFrom('scalar', 'gamma shape', 'gamma dtype', 'eps', 'integer', 'not a tensor', 'param not a tensor', 'residual shape', 'disposed');
    fc.assert(
      fc.property(fc.constantFrom('layerNorm', 'rmsNorm', 'addLayerNorm', 'addRmsNorm'), fault, floatDTypeArb, intDTypeArb, shapeArb(1, 3, 4), fc.oneof(badNumberArb, fc.constantFrom(-1e-5, -1)), notATensorArb, fc.nat(), (op, f, dt, it, shape, badEps, junk, k) =>
        noLeak(() => {
          const d = shape[shape.length - 1]!;
          let x: unknown = kx.zeros(shape, { dtype: dt });
          let res: unknown = kx.zeros(shape, { dtype: dt });
          let gamma: unknown = kx.zeros([d], { dtype: dt });
          let eps: unknown = 1e-5;
          let codes: kx.ErrorCode[];
          switch (f) {
            case 'scalar': x = kx.zeros([], { dtype: dt }); res = kx.zeros([], { dtype: dt }); gamma = null; codes = ['E_SHAPE']; break;
            case 'gamma shape': gamma = kx.zeros([[d + 1], [1, d], []][k % 3]!, { dtype: dt }); codes = ['E_SHAPE']; break;
            case 'gamma dtype': gamma = kx.zeros([d], { dtype: FLOAT_DTYPES.find((t) => t !== dt)! }); codes = ['E_DTYPE']; break;
            case 'eps':
              // (null: the default; 0.5, 2^53, 1e300 are fine)
              if (badEps === null || (typeof badEps === 'number' && Number.isFinite(badEps) && badEps >= 0)) return;
              eps = badEps;
              codes = ['E_ARG'];
              break;
            case 'integer': x = kx.zeros(shape, { dtype: it }); codes = ['E_DTYPE']; break;
            case 'not a tensor': x = junk; codes = ['E_ARG']; break;
            case 'param not a tensor': if (junk === null || junk === undefined) return; gamma = junk; codes = ['E_ARG']; break;
            case 'residual shape': if (!op.startsWith('add')) return; res = kx.zeros([...shape, 2], { dtype: dt }); codes = ['E_SHAPE']; break;
            case 'disposed': x = disposed(shape, dt); codes = ['E_DISPOSED']; break;
          }
          const X = x as kx.Tensor, R = res as kx.Tensor, G = gamma as kx.Tensor, E = eps as number;
          const call = { layerNorm: () => kx.layerNorm(X, G, null, E), rmsNorm: () => kx.rmsNorm(X, G, E), addLayerNorm: () => kx.addLayerNorm(X, R, G, null, E), addRmsNorm: () => kx.addRmsNorm(X, R, G, E) }[op]!;
          fails(call, ...codes);
        }),
      ),
      params(750),
    );
  });

  it('biasGelu(x, bias) is gelu(x + bias) without rounding the sum', () => {
    fc.assert(
      fc.property(floatDTypeArb, anyShapeArb(1, 3), valueSpecArb(['grid', 'wide']), fc.boolean(), (dtype, shape, spec, tanh) =>
        noLeak(() => {
          const d = shape[shape.length - 1]!;
          const x = random(shape, dtype, spec);
          const bias = random([d], dtype, { ...spec, seed: spec.seed + 1 });
          const y = succeeds(() => kx.biasGelu(x, bias, { approximate: tanh ? 'tanh' : 'none' }));
          const bv = read(bias);
          const xv = read(x);
          const z = xv.map((v, i) => v + bv[i % d]!);
          const gelu = tanh ? (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))) : (v: number) => v * 0.5 * (1 + erf(v / Math.SQRT2));
          expectTensor(y, shape, dtype, z.map((v) => roundTo(dtype, gelu(v))), tolerance(dtype), 'biasGelu', maxAbs(z));
        }),
      ),
      params(300),
    );
  });
});

// ---- embedding ----------------------------------------------------------------------------------------

describe('properties: embedding', () => {
  it('embedding(ids, table) gathers rows exactly for ids in [0, V) and refuses any other id with E_ARG', () => {
    fc.assert(
      fc.property(floatDTypeArb, shapeArb(0, 3), dimArb(5), dimArb(4), fc.integer(), fc.boolean(), valueSpecArb(['grid', 'special']), (dtype, idShape, V, D, seed, inRange, spec) =>
        noLeak(() => {
          const n = sizeOf(idShape);
          const idv = ints(n, seed, inRange ? 0 : -3, inRange ? V - 1 : V + 2);
          const ids = make(idv, idShape, 'int32');
          const table = random([V, D], dtype, spec);
          const bad = idv.some((i) => i < 0 || i >= V);
          if (bad) {
            fails(() => kx.embedding(ids, table), 'E_ARG');
            return;
          }
          const y = succeeds(() => kx.embedding(ids, table), `embedding(${ids.describe()}, ${table.describe()})`);
          const tv = read(table);
          expectTensor(y, [...idShape, D], dtype, idv.flatMap((i) => tv.slice(i * D, (i + 1) * D)), 0, 'embedding');
        }),
      ),
      params(600),
    );
  });

  it('embedding refuses non-int32 ids and integer tables (E_DTYPE), tables not [V, D] (E_SHAPE), non-tensors (E_ARG), disposed tensors (E_DISPOSED)', () => {
    fc.assert(
      fc.property(fc.constantFrom('ids dtype', 'table dtype', 'table rank', 'not a tensor', 'disposed'), fc.constantFrom<kx.DType>('float32', 'uint8', 'bfloat16'), shapeArb(0, 3, 5), notATensorArb, fc.boolean(), (f, wrong, rankShape, junk, first) =>
        noLeak(() => {
          const ids = kx.zeros([2], { dtype: 'int32' });
          const table = kx.zeros([3, 2]);
          const wrongIds = kx.zeros([2], { dtype: wrong });
          const intTable = kx.zeros([3, 2], { dtype: 'int32' });
          const oddTable = kx.zeros(rankShape.length === 2 ? [...rankShape, 1] : rankShape);
          const gone = first ? disposed([2], 'int32') : disposed([3, 2]);
          switch (f) {
            case 'ids dtype': fails(() => kx.embedding(wrongIds, table), 'E_DTYPE'); break;
            case 'table dtype': fails(() => kx.embedding(ids, intTable), 'E_DTYPE'); break;
            case 'table rank': fails(() => kx.embedding(ids, oddTable), 'E_SHAPE'); break;
            case 'not a tensor': fails(() => (first ? kx.embedding(junk as kx.Tensor, table) : kx.embedding(ids, junk as kx.Tensor)), 'E_ARG'); break;
            case 'disposed': fails(() => (first ? kx.embedding(gone, table) : kx.embedding(ids, gone)), 'E_DISPOSED'); break;
          }
        }),
      ),
      params(300),
    );
  });
});

// ---- crossEntropy ----------------------------------------------------------------------------------------

describe('properties: crossEntropy', () => {
  it('crossEntropy is the float32 mean of −log softmax at the label over rows not ignored (NaN when none count); a label outside [0, C) is E_ARG', () => {
    const cArb = fc.oneof({ arbitrary: dimArb(6), weight: 6 }, { arbitrary: fc.constantFrom(1031, 4099), weight: 1 });
    fc.assert(
      fc.property(floatDTypeArb, dimArb(6), cArb, fc.integer(), fc.option(fc.constantFrom(-100, -1, 0, 2), { nil: undefined }), fc.boolean(), valueSpecArb(['grid', 'wide']), fc.constantFrom(4, 40), (dtype, N, C, seed, ignoreIndex, inRange, spec, scale) =>
        noLeak(() => {
          const ignore = ignoreIndex ?? -100;
          const raw = ints(N, seed, inRange ? 0 : -2, inRange ? Math.max(C - 1, 0) : C + 1);
          // Some rows ignored; with C = 0 every label is out of range unless ignored.
          const labelsv = raw.map((l, i) => (i % 3 === 2 || C === 0 ? ignore : l));
          const labels = make(labelsv, [N], 'int32');
          const logits = random([N, C], dtype, spec, scale);
          const options = ignoreIndex === undefined ? undefined : { ignoreIndex };
          const bad = labelsv.some((l) => l !== ignore && (l < 0 || l >= C));
          if (bad) {
            fails(() => kx.crossEntropy(logits, labels, options), 'E_ARG');
            return;
          }
          const y = succeeds(() => kx.crossEntropy(logits, labels, options), `crossEntropy(${logits.describe()}, ${show(labelsv)}, ${ignore})`);
          const lv = read(logits);
          let sum = 0;
          let count = 0;
          labelsv.forEach((l, i) => {
            if (l === ignore) return;
            const row = lv.slice(i * C, (i + 1) * C);
            const m = Math.max(...row);
            const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
            sum += lse - row[l]!;
            count++;
          });
          // A loss is accurate in absolute terms near 0 (float32's log(1 + tiny) is 0, as PyTorch's).
          expectTensor(y, [], 'float32', [count === 0 ? NaN : Math.fround(sum / count)], tolerance('float32', 'reduction'), 'crossEntropy', 1);
        }),
      ),
      params(750),
    );
  });

  it('crossEntropy refuses logits not [N, C] and mismatched labels (E_SHAPE), non-int32 labels and integer logits (E_DTYPE), a non-integer ignoreIndex or options (E_ARG), non-tensors (E_ARG), disposed tensors (E_DISPOSED)', () => {
    const fault = fc.constantFrom('logits rank', 'labels shape', 'labels dtype', 'logits dtype', 'ignoreIndex', 'options', 'not a tensor', 'disposed');
    fc.assert(
      fc.property(fault, fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), shapeArb(0, 4), badNumberArb, notATensorArb, fc.nat(), (f, N, C, odd, bad, junk, k) =>
        noLeak(() => {
          const logits = kx.zeros([N, C]);
          const labels = kx.zeros([N], { dtype: 'int32' });
          const t = {
            oddLogits: kx.zeros(odd.length === 2 ? [...odd, 1] : odd),
            oddLabels: kx.zeros([[N + 1], [N, 1], []][k % 3]!, { dtype: 'int32' }),
            floatLabels: kx.zeros([N], { dtype: (['float32', 'uint8'] as const)[k % 2] }),
            intLogits: kx.zeros([N, C], { dtype: 'int32' }),
            gone: disposed([N, C]),
          };
          const call = {
            'logits rank': () => kx.crossEntropy(t.oddLogits, kx.zeros([t.oddLogits.shape[0] ?? 1], { dtype: 'int32' })),
            'labels shape': () => kx.crossEntropy(logits, t.oddLabels),
            'labels dtype': () => kx.crossEntropy(logits, t.floatLabels),
            'logits dtype': () => kx.crossEntropy(t.intLogits, labels),
            // (an integer of any size is a fine ignoreIndex; null is the default)
            ignoreIndex: () => kx.crossEntropy(logits, labels, { ignoreIndex: (bad === null || Number.isInteger(bad) ? 0.5 : bad) as number }),
            options: () => kx.crossEntropy(logits, labels, [null, 3, 'x'][k % 3] as kx.CrossEntropyOptions),
            'not a tensor': () => (k % 2 ? kx.crossEntropy(junk as kx.Tensor, labels) : kx.crossEntropy(logits, junk as kx.Tensor)),
            disposed: () => kx.crossEntropy(t.gone, labels),
          }[f];
          const codes: Record<string, kx.ErrorCode[]> = {
            'logits rank': ['E_SHAPE'],
            'labels shape': ['E_SHAPE'],
            'labels dtype': ['E_DTYPE'],
            'logits dtype': ['E_DTYPE'],
            ignoreIndex: ['E_ARG'],
            options: ['E_ARG'],
            'not a tensor': ['E_ARG'],
            disposed: ['E_DISPOSED'],
          };
          if (f === 'logits rank') {
            // The labels are made inside the call here: build them first so the leak check is fair.
            const lab = kx.zeros([t.oddLogits.shape[0] ?? 1], { dtype: 'int32' });
            fails(() => kx.crossEntropy(t.oddLogits, lab), 'E_SHAPE');
            return;
          }
          fails(call, ...codes[f]!);
        }),
      ),
      params(450),
    );
  });
});

// ---- attention ---------------------------------------------------------------------------------------------

interface AttnCase {
  B: number;
  H: number;
  Tq: number;
  Tk: number;
  D: number;
  Dv: number;
  mask: number[] | null;
  bias: number[] | null;
  causal: boolean;
  scale: number | undefined;
}

const attnCaseArb: fc.Arbitrary<AttnCase> = fc
  .record({
    B: dimArb(2),
    H: dimArb(2),
    Tq: fc.oneof({ arbitrary: dimArb(5), weight: 5 }, { arbitrary: fc.constantFrom(65, 130), weight: 1 }),
    Tk: fc.oneof({ arbitrary: dimArb(5), weight: 5 }, { arbitrary: fc.constantFrom(65, 130), weight: 1 }),
    D: fc.oneof({ arbitrary: dimArb(5), weight: 5 }, { arbitrary: fc.constant(64), weight: 1 }),
    Dv: dimArb(5),
    withMask: fc.boolean(),
    withBias: fc.boolean(),
    causal: fc.boolean(),
    scale: fc.option(fc.constantFrom(0, 0.5, -1, 2), { nil: undefined }),
  })
  .chain(({ withMask, withBias, ...c }) => {
    const full = [c.B, c.H, c.Tq, c.Tk];
    return fc.record({
      ...Object.fromEntries(Object.entries(c).map(([k, v]) => [k, fc.constant(v)])),
      mask: withMask ? broadcastableTo(full) : fc.constant(null),
      bias: withBias ? broadcastableTo(full) : fc.constant(null),
    }) as fc.Arbitrary<AttnCase>;
  })
  .filter((c) => c.B * c.H * c.Tq * c.Tk * Math.max(c.D, c.Dv, 1) <= 200_000);

/** softmax(q·kᵀ·scale + bias, masked) · v per (b, h, i) in float64; a row with no visible key is zeros. */
function attentionRef(c: AttnCase, q: number[], k: number[], v: number[], mask: number[] | null, bias: number[] | null, scale: number): number[] {
  const { B, H, Tq, Tk, D, Dv } = c;
  const out = new Array<number>(B * H * Tq * Dv).fill(0);
  const full = [B, H, Tq, Tk];
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Tq; i++) {
        const scores: number[] = [];
        const keys: number[] = [];
        for (let j = 0; j < Tk; j++) {
          if (c.causal && j > i + Tk - Tq) continue;
          if (mask && c.mask && !mask[broadcastFlat([b, h, i, j], c.mask)]) continue;
          let s = 0;
          for (let p = 0; p < D; p++) s += q[((b * H + h) * Tq + i) * D + p]! * k[((b * H + h) * Tk + j) * D + p]!;
          s *= scale;
          if (bias && c.bias) s += bias[broadcastFlat([b, h, i, j], c.bias)]!;
          scores.push(s);
          keys.push(j);
        }
        if (keys.length === 0) continue;
        const m = Math.max(...scores);
        const w = scores.map((s) => Math.exp(s - m));
        const z = w.reduce((x, y) => x + y, 0);
        for (let t = 0; t < Dv; t++) {
          let acc = 0;
          keys.forEach((j, n) => (acc += w[n]! * v[((b * H + h) * Tk + j) * Dv + t]!));
          out[((b * H + h) * Tq + i) * Dv + t] = acc / z;
        }
        void full;
      }
    }
  }
  return out;
}

describe('properties: attention', () => {
  it('attention with any broadcast mask and bias, causal or not, any scale, matches float64 (fully masked rows give zeros)', () => {
    fc.assert(
      fc.property(floatDTypeArb, attnCaseArb, valueSpecArb(['grid', 'wide']), fc.integer(), (dtype, c, spec, seed) =>
        noLeak(() => {
          const q = random([c.B, c.H, c.Tq, c.D], dtype, spec, 2);
          const k = random([c.B, c.H, c.Tk, c.D], dtype, { ...spec, seed: spec.seed + 1 }, 2);
          const v = random([c.B, c.H, c.Tk, c.Dv], dtype, { ...spec, seed: spec.seed + 2 }, 2);
          const mask = c.mask ? make(ints(sizeOf(c.mask), seed, 0, 3).map((x) => (x === 0 ? 0 : x === 3 ? 7 : 1)), c.mask, 'uint8') : null;
          const bias = c.bias ? random(c.bias, dtype, { ...spec, seed: spec.seed + 3 }, 2) : null;
          const options: kx.AttentionOptions = { causal: c.causal, ...(mask ? { mask } : {}), ...(bias ? { bias } : {}), ...(c.scale === undefined ? {} : { scale: c.scale }) };
          const label = `attention(${q.describe()}, ${k.describe()}, ${v.describe()}, mask ${show(c.mask)}, bias ${show(c.bias)}, causal ${c.causal}, scale ${c.scale})`;
          const y = succeeds(() => kx.attention(q, k, v, options), label);
          const scale = c.scale ?? (c.D > 0 ? 1 / Math.sqrt(c.D) : 1);
          const ref = attentionRef(c, read(q), read(k), read(v), mask && read(mask), bias && read(bias), scale);
          expectTensor(y, [c.B, c.H, c.Tq, c.Dv], dtype, ref.map((x) => roundTo(dtype, x)), tolerance(dtype, 'reduction'), label);
        }),
      ),
      params(600),
    );
  });

  it('attention refuses ranks other than 4 and mismatched dims (E_SHAPE), masks/biases that do not broadcast (E_SHAPE) or of the wrong dtype (E_DTYPE), bad causal/scale/options (E_ARG), disposed tensors (E_DISPOSED)', () => {
    const fault = fc.constantFrom('rank', 'batch', 'head dim', 'lengths', 'dtypes', 'mask dtype', 'mask shape', 'mask rank', 'bias dtype', 'bias shape', 'causal', 'scale', 'options', 'not a tensor', 'disposed');
    fc.assert(
      fc.property(fault, floatDTypeArb, fc.integer({ min: 1, max: 3 }), fc.integer({ min: 2, max: 4 }), badNumberArb, notATensorArb, fc.nat(), (f, dt, B, T, bad, junk, k) =>
        noLeak(() => {
          const z = (s: number[], dtype: kx.DType = dt) => kx.zeros(s, { dtype });
          let q: unknown = z([B, 2, T, 3]);
          let kk: unknown = z([B, 2, T, 3]);
          let v: unknown = z([B, 2, T, 4]);
          let options: unknown = {};
          let codes: kx.ErrorCode[] = ['E_SHAPE'];
          const put = (t: unknown) => (k % 3 === 0 ? (q = t) : k % 3 === 1 ? (kk = t) : (v = t));
          switch (f) {
            case 'rank': put(z([[B, T, 3], [B, 1, 2, T, 3], [3]][k % 3]!)); break;
            case 'batch': kk = z([B + 1, 2, T, 3]); break;
            case 'head dim': kk = z([B, 2, T, 4]); break;
            case 'lengths': v = z([B, 2, T + 1, 4]); break;
            case 'dtypes': v = z([B, 2, T, 4], FLOAT_DTYPES.find((d) => d !== dt)!); codes = ['E_DTYPE']; break;
            case 'mask dtype': options = { mask: z([B, 1, 1, T], (['float32', 'int32'] as const)[k % 2]) }; codes = ['E_DTYPE']; break;
            case 'mask shape': options = { mask: z([B, 1, 1, T + 1], 'uint8') }; break;
            case 'mask rank': options = { mask: z([1, B, 1, 1, T], 'uint8') }; break;
            case 'bias dtype': options = { bias: z([1, 2, T, T], 'int32') }; codes = ['E_DTYPE']; break;
            case 'bias shape': options = { bias: z([B + 1, 2, T, T]) }; break;
            case 'causal': options = { causal: [1, 'true', null][k % 3] }; codes = ['E_ARG']; break;
            case 'scale':
              if (bad === null || (typeof bad === 'number' && Number.isFinite(bad))) return; // (null: the default; any finite number is a scale)
              options = { scale: bad };
              codes = ['E_ARG'];
              break;
            case 'options': options = [null, 1, 'causal'][k % 3]; codes = ['E_ARG']; break;
            case 'not a tensor': put(junk); codes = ['E_ARG']; break;
            case 'disposed': put(disposed([B, 2, T, k % 3 === 2 ? 4 : 3], dt)); codes = ['E_DISPOSED']; break;
          }
          fails(() => kx.attention(q as kx.Tensor, kk as kx.Tensor, v as kx.Tensor, options as kx.AttentionOptions), ...codes);
        }),
      ),
      params(750),
    );
  });
});

// ---- rope ------------------------------------------------------------------------------------------------------

describe('properties: rope', () => {
  it('rope rotates each adjacent pair by m·θ_i (θ_i in float32, the angle a float32 product), inverse by −m·θ_i, positions broadcast', () => {
    const caseArb = fc
      .tuple(shapeArb(0, 2, 3), dimArb(5), fc.integer({ min: 0, max: 4 }))
      .map(([lead, T, half]) => ({ shape: [...lead, T, 2 * half] }))
      .chain(({ shape }) => fc.record({ shape: fc.constant(shape), positions: fc.option(broadcastableTo(shape.slice(0, -1)), { nil: undefined }) }));
    fc.assert(
      fc.property(floatDTypeArb, caseArb, valueSpecArb(['grid', 'wide']), fc.integer(), fc.boolean(), fc.constantFrom(100, 5000, 2 ** 20), (dtype, { shape, positions }, spec, seed, inverse, maxPos) =>
        noLeak(() => {
          const x = random(shape, dtype, spec);
          const T = shape[shape.length - 2]!;
          const D = shape[shape.length - 1]!;
          const pos = positions ? make(ints(sizeOf(positions), seed, -maxPos, maxPos), positions, 'int32') : null;
          const y = succeeds(() => kx.rope(x, { positions: pos, inverse }), `rope(${x.describe()}, ${pos?.describe()}, ${inverse})`);
          const xv = read(x);
          const pv = pos ? read(pos) : null;
          const lead = shape.slice(0, -1);
          const out = new Array<number>(xv.length);
          for (let r = 0; r < sizeOf(lead); r++) {
            const idx = unravel(r, lead);
            const m = pv ? pv[broadcastFlat(idx, positions!)]! : idx[idx.length - 1]!;
            for (let i = 0; i < D / 2; i++) {
              const theta = Math.fround(Math.pow(10000, (-2 * i) / D));
              const angle = Math.fround(Math.fround(m) * theta);
              const c = Math.cos(angle);
              const s = (inverse ? -1 : 1) * Math.sin(angle);
              const [x0, x1] = [xv[r * D + 2 * i]!, xv[r * D + 2 * i + 1]!];
              out[r * D + 2 * i] = x0 * c - x1 * s;
              out[r * D + 2 * i + 1] = x1 * c + x0 * s;
            }
          }
          void T;
          expectTensor(y, shape, dtype, out.map((v) => roundTo(dtype, v)), tolerance(dtype), 'rope', 1);
        }),
      ),
      params(600),
    );
  });

  it('rope refuses odd D and rank < 2 (E_SHAPE), positions that are not int32 (E_DTYPE) or do not broadcast (E_SHAPE), bad layout/inverse/options (E_ARG), disposed tensors (E_DISPOSED)', () => {
    const fault = fc.constantFrom('odd', 'rank', 'positions dtype', 'positions shape', 'layout', 'inverse', 'options', 'integer', 'not a tensor', 'disposed');
    fc.assert(
      fc.property(fault, floatDTypeArb, fc.integer({ min: 1, max: 4 }), notATensorArb, fc.nat(), (f, dt, T, junk, k) =>
        noLeak(() => {
          let x: unknown = kx.zeros([2, T, 4], { dtype: dt });
          let options: unknown = {};
          let codes: kx.ErrorCode[] = ['E_SHAPE'];
          switch (f) {
            case 'odd': x = kx.zeros([T, 3], { dtype: dt }); break;
            case 'rank': x = kx.zeros([[4], []][k % 2]!, { dtype: dt }); break;
            case 'positions dtype': options = { positions: kx.zeros([T], { dtype: (['float32', 'uint8'] as const)[k % 2] }) }; codes = ['E_DTYPE']; break;
            case 'positions shape': options = { positions: kx.zeros([[T + 1], [3, T], [1, 2, T]][k % 3]!, { dtype: 'int32' }) }; break;
            case 'layout': options = { layout: ['halves', null, 1][k % 3] }; codes = ['E_ARG']; break;
            case 'inverse': options = { inverse: [1, 'yes', null][k % 3] }; codes = ['E_ARG']; break;
            case 'options': options = [null, 2, 'x'][k % 3]; codes = ['E_ARG']; break;
            case 'integer': x = kx.zeros([T, 4], { dtype: 'int32' }); codes = ['E_DTYPE']; break;
            case 'not a tensor': x = junk; codes = ['E_ARG']; break;
            case 'disposed': x = disposed([T, 4], dt); codes = ['E_DISPOSED']; break;
          }
          fails(() => kx.rope(x as kx.Tensor, options as kx.RopeOptions), ...codes);
        }),
      ),
      params(450),
    );
  });
});

// ---- dropout ----------------------------------------------------------------------------------------------------

/** Whether random element e = offset + i keeps under p: word e % 4 of Philox block e / 4 (DESIGN.md "Kernel choices"). */
function keeps(seed: number, offset: number, n: number, p: number): boolean[] {
  const key = [seed % 2 ** 32, Math.floor(seed / 2 ** 32)];
  const pf = Math.fround(p);
  return Array.from({ length: n }, (_, i) => {
    const e = offset + i;
    const block = Math.floor(e / 4);
    const words = kx.philox4x32([block % 2 ** 32, Math.floor(block / 2 ** 32), 0, 0], key);
    return (words[e % 4]! >>> 8) * 2 ** -24 >= pf;
  });
}

describe('properties: dropout', () => {
  it('dropout keeps element i when Philox(seed, offset + i) ≥ p, scaling by 1/(1 − p) in float32; a Philox generator advances by x.size', () => {
    const keyArb = fc.record({ seed: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.constantFrom(2 ** 32, 2 ** 53 - 1, 2 ** 40 + 7)), offset: fc.option(fc.oneof(fc.integer({ min: 0, max: 100 }), fc.constantFrom(2 ** 32 - 1, 2 ** 52)), { nil: undefined }) });
    fc.assert(
      fc.property(floatDTypeArb, anyShapeArb(), valueSpecArb(['grid', 'special']), fc.oneof(fc.constantFrom(0, 0.5, 0.1, 0.999), fc.double({ min: 0, max: 0.99, noNaN: true })), keyArb, fc.boolean(), (dtype, shape, spec, p, key, generator) =>
        noLeak(() => {
          const x = random(shape, dtype, spec);
          const n = sizeOf(shape);
          const rng = generator ? new kx.Philox(key.seed, key.offset ?? 0) : key;
          const y = succeeds(() => kx.dropout(x, p, rng), `dropout(${x.describe()}, ${p}, ${show(key)})`);
          if (generator) expect((rng as kx.Philox).offset).toBe((key.offset ?? 0) + n);
          expect(y).not.toBe(x);
          const scale = Math.fround(1 / (1 - p));
          const keep = keeps(key.seed, key.offset ?? 0, n, p);
          const expected = read(x).map((v, i) => (keep[i] ? roundTo(dtype, Math.fround(v * scale)) : 0));
          expectTensor(y, shape, dtype, expected, 0, 'dropout');
        }),
      ),
      params(600),
    );
  });

  it('dropout refuses p outside [0, 1), seeds and offsets that are not integers in [0, 2^53) (E_ARG), a bad rng (E_ARG), integer x (E_DTYPE), disposed x (E_DISPOSED)', () => {
    const fault = fc.constantFrom('p', 'seed', 'offset', 'offset + size', 'rng', 'integer', 'disposed');
    fc.assert(
      fc.property(fault, shapeArb(1, 3), fc.oneof(badNumberArb, fc.constantFrom(1, -0.1, 2, -1e-300)), intDTypeArb, fc.nat(), (f, shape, bad, it, k) =>
        noLeak(() => {
          const x = kx.zeros(shape);
          const xi = kx.zeros(shape, { dtype: it });
          const xd = disposed(shape);
          // (0.5 is a fine p, 1 and 2 fine seeds and offsets, a null offset the default.)
          switch (f) {
            case 'p': if (bad !== 0.5) fails(() => kx.dropout(x, bad as number, { seed: 1 }), 'E_ARG'); break;
            case 'seed': if (bad !== 1 && bad !== 2) fails(() => kx.dropout(x, 0.5, { seed: bad as number }), 'E_ARG'); break;
            case 'offset': if (bad !== 1 && bad !== 2 && bad !== null) fails(() => kx.dropout(x, 0.5, { seed: 1, offset: bad as number }), 'E_ARG'); break;
            case 'offset + size': if (sizeOf(shape) > 0) fails(() => kx.dropout(x, 0.5, { seed: 1, offset: 2 ** 53 - 1 }), 'E_ARG'); break;
            case 'rng': fails(() => kx.dropout(x, 0.5, [null, 5, 'seed', {}][k % 4] as kx.RandomKey), 'E_ARG'); break;
            case 'integer': fails(() => kx.dropout(xi, 0.5, { seed: 1 }), 'E_DTYPE'); break;
            case 'disposed': fails(() => kx.dropout(xd, 0.5, { seed: 1 }), 'E_DISPOSED'); break;
          }
        }),
      ),
      params(450),
    );
  });
});
