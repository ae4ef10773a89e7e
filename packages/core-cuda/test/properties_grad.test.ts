// Property-based tests of the gradients: for random shapes (0-size dims included), every
// differentiable op's valueAndGrad returns one gradient per parameter with the parameter's shape
// and dtype, never a crash or a non-KexueError; where the parameters have elements, the gradients
// agree with central finite differences (checkGrad). The loss is Σ w·op(x) with fixed random
// weights w, so that no gradient is trivially zero.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { broadcastableTo, dimArb, ints, make, noLeak, params, random, read, shapeArb, show, sizeOf, succeeds } from './property_support.js';

interface GradCase {
  name: string;
  /** Values well apart (a shuffled grid 0.1 apart), for max: no tie within the finite-difference step. */
  distinct?: boolean;
  /** The parameters' shapes; values are drawn in [-1, 1]. */
  shapes: number[][];
  /** The op applied to the parameters (other inputs made inside, from the case's data). */
  fn: (...xs: kx.Tensor[]) => kx.Tensor;
  /** Finite-difference step (default 1e-2). */
  eps?: number;
}

const small = (minRank = 0, maxRank = 3) => shapeArb(minRank, maxRank, 3);

/** Cases by op family. */
const caseArb: fc.Arbitrary<GradCase> = fc.oneof(
  // Elementwise with broadcasting.
  small().chain((out) => fc.tuple(broadcastableTo(out), broadcastableTo(out), fc.constantFrom('add', 'sub', 'mul', 'div'))).map(([a, b, op]) => ({
    name: `${op} ${show(a)} ${show(b)}`,
    shapes: [a, b],
    // div: a divisor in [1, 3] (x + 2 with x in [-1, 1]).
    fn: (x: kx.Tensor, y: kx.Tensor) => (op === 'add' ? kx.add(x, y) : op === 'sub' ? kx.sub(x, y) : op === 'mul' ? kx.mul(x, y) : kx.div(x, kx.add(y, 2))),
  })),
  // Smooth unary functions.
  fc.tuple(small(), fc.constantFrom('exp', 'tanh', 'sigmoid', 'silu', 'gelu', 'geluTanh', 'pow3')).map(([s, f]) => ({
    name: `${f} ${show(s)}`,
    shapes: [s],
    fn: (x: kx.Tensor) => (f === 'exp' ? kx.exp(x) : f === 'tanh' ? kx.tanh(x) : f === 'sigmoid' ? kx.sigmoid(x) : f === 'silu' ? kx.silu(x) : f === 'gelu' ? kx.gelu(x) : f === 'geluTanh' ? kx.gelu(x, { approximate: 'tanh' }) : kx.pow(x, 3)),
  })),
  // Reductions.
  small(1, 3).chain((s) => fc.tuple(fc.constant(s), fc.subarray([...s.keys()]), fc.boolean(), fc.constantFrom('sum', 'mean', 'max'))).map(([s, axes, keep, op]) => ({
    name: `${op} ${show(s)} ${show(axes)} ${keep}`,
    distinct: op === 'max',
    shapes: [s],
    fn: (x: kx.Tensor) => (op === 'sum' ? kx.sum(x, axes, keep) : op === 'mean' ? kx.mean(x, axes, keep) : kx.max(x, axes, keep)),
  })).filter((c) => !(c.name.startsWith('max') && c.shapes[0]!.includes(0))),
  // Softmax.
  small(1, 3).chain((s) => fc.tuple(fc.constant(s), fc.integer({ min: -s.length, max: s.length - 1 }), fc.boolean())).map(([s, axis, log]) => ({
    name: `${log ? 'logSoftmax' : 'softmax'} ${show(s)} ${axis}`,
    shapes: [s],
    fn: (x: kx.Tensor) => (log ? kx.logSoftmax(x, axis) : kx.softmax(x, axis)),
  })),
  // matmul with flags, batch broadcasting and bias.
  fc.record({ batch: shapeArb(0, 2, 2).chain((o) => fc.tuple(broadcastableTo(o), broadcastableTo(o))), m: dimArb(3), k: dimArb(3), n: dimArb(3), ta: fc.boolean(), tb: fc.boolean(), bias: fc.boolean() }).map(({ batch: [ba, bb], m, k, n, ta, tb, bias }) => ({
    name: `matmul ${show([ba, bb, m, k, n, ta, tb, bias])}`,
    shapes: [[...ba, ...(ta ? [k, m] : [m, k])], [...bb, ...(tb ? [n, k] : [k, n])], ...(bias ? [[n]] : [])],
    fn: (a: kx.Tensor, b: kx.Tensor, c?: kx.Tensor) => kx.matmul(a, b, { transA: ta, transB: tb, ...(c ? { bias: c } : {}) }),
  })),
  // Norms (eps 0.1 keeps rows of nearly equal values smooth at the finite-difference step).
  fc.tuple(small(1, 3), fc.constantFrom('layerNorm', 'rmsNorm', 'addLayerNorm', 'addRmsNorm', 'biasGelu')).map(([s, op]) => {
    const d = [s[s.length - 1]!];
    return {
      name: `${op} ${show(s)}`,
      shapes: op === 'layerNorm' ? [s, d, d] : op === 'rmsNorm' ? [s, d] : op === 'addLayerNorm' ? [s, s, d, d] : op === 'addRmsNorm' ? [s, s, d] : [s, d],
      fn: (...p: kx.Tensor[]) =>
        op === 'layerNorm'
          ? kx.layerNorm(p[0]!, p[1], p[2], 0.1)
          : op === 'rmsNorm'
            ? kx.rmsNorm(p[0]!, p[1], 0.1)
            : op === 'addLayerNorm'
              ? kx.addLayerNorm(p[0]!, p[1]!, p[2], p[3], 0.1).y
              : op === 'addRmsNorm'
                ? kx.addRmsNorm(p[0]!, p[1]!, p[2], 0.1).y
                : kx.biasGelu(p[0]!, p[1]!),
    };
  }),
  // Attention with a mask, a bias, causal.
  fc.record({ B: dimArb(2), H: dimArb(2), Tq: dimArb(3), Tk: dimArb(3), D: dimArb(3), Dv: dimArb(2), causal: fc.boolean(), bias: fc.boolean(), seed: fc.integer() }).map((c) => ({
    name: `attention ${show(c)}`,
    shapes: [[c.B, c.H, c.Tq, c.D], [c.B, c.H, c.Tk, c.D], [c.B, c.H, c.Tk, c.Dv], ...(c.bias ? [[1, c.H, c.Tq, c.Tk]] : [])],
    fn: (q: kx.Tensor, k: kx.Tensor, v: kx.Tensor, bias?: kx.Tensor) =>
      kx.attention(q, k, v, { causal: c.causal, mask: make(ints(c.B * c.Tk, c.seed, 0, 3).map((x) => (x ? 1 : 0)), [c.B, 1, 1, c.Tk], 'uint8'), ...(bias ? { bias } : {}) }),
  })),
  // rope, crossEntropy, embedding, dropout.
  fc.tuple(shapeArb(0, 2, 2), dimArb(3), fc.integer({ min: 0, max: 3 }), fc.integer()).map(([lead, T, half, seed]) => ({
    name: `rope ${show([...lead, T, 2 * half])}`,
    shapes: [[...lead, T, 2 * half]],
    fn: (x: kx.Tensor) => kx.rope(x, { positions: make(ints(T, seed, -50, 50), [T], 'int32') }),
  })),
  fc.tuple(dimArb(4), fc.integer({ min: 1, max: 4 }), fc.integer()).map(([N, C, seed]) => ({
    name: `crossEntropy [${N}, ${C}]`,
    shapes: [[N, C]],
    // Row 0 ignored when there are several: the mean is over the others.
    fn: (logits: kx.Tensor) => kx.crossEntropy(logits, make(ints(N, seed, 0, C - 1).map((l, i) => (i === 0 && N > 1 ? -100 : l)), [N], 'int32')),
  })),
  fc.tuple(shapeArb(0, 2, 3), fc.integer({ min: 1, max: 4 }), dimArb(3), fc.integer()).map(([ids, V, D, seed]) => ({
    name: `embedding ${show(ids)} [${V}, ${D}]`,
    shapes: [[V, D]],
    fn: (table: kx.Tensor) => kx.embedding(make(ints(sizeOf(ids), seed, 0, V - 1), ids, 'int32'), table),
  })),
  fc.tuple(small(), fc.constantFrom(0, 0.3, 0.7), fc.nat(1000)).map(([s, p, seed]) => ({
    name: `dropout ${show(s)} ${p}`,
    shapes: [s],
    fn: (x: kx.Tensor) => kx.dropout(x, p, { seed }),
  })),
  // Shape ops.
  small(1, 3).chain((s) => fc.tuple(fc.constant(s), fc.shuffledSubarray([...s.keys()], { minLength: s.length, maxLength: s.length }), fc.integer({ min: 0, max: s.length - 1 }), fc.constantFrom('permute', 'concat', 'slice', 'reshape', 'broadcastTo'))).map(([s, perm, axis, op]) => ({
    name: `${op} ${show(s)} ${show(perm)} ${axis}`,
    shapes: op === 'concat' ? [s, s.map((d, a) => (a === axis ? d + 1 : d))] : [s],
    fn: (x: kx.Tensor, y?: kx.Tensor) =>
      op === 'permute'
        ? kx.permute(x, perm)
        : op === 'concat'
          ? kx.concat([x, y!], axis)
          : op === 'slice'
            ? kx.slice(x, s.map((d) => (d > 1 ? 1 : 0)), s.map(() => -1))
            : op === 'reshape'
              ? kx.reshape(x, [-1])
              : kx.broadcastTo(x, [2, ...s]),
  })),
);

describe('properties: gradients', () => {
  it('valueAndGrad gives each parameter a gradient of its shape and dtype, matching finite differences', () => {
    fc.assert(
      fc.property(caseArb, fc.integer(), (c, seed) =>
        noLeak(() => {
          const xs = c.shapes.map((s, i) => {
            if (!c.distinct) return random(s, 'float32', { seed: seed + i, kind: 'wide' }, 1);
            const order = ints(sizeOf(s), seed + i, 0, 1e9).map((r, j) => [r, j] as const).sort((p, q) => p[0] - q[0]);
            return make(order.map(([, j]) => j * 0.1 - 1), s);
          });
          // Σ w·op(x), w drawn once for the output's shape.
          const outShape = kx.tidy(() => [...c.fn(...xs).shape]);
          const w = random(outShape, 'float32', { seed: seed + 99, kind: 'wide' }, 1);
          const loss = (...ps: kx.Tensor[]) => kx.sum(kx.mul(kx.cast(c.fn(...ps), 'float32'), w));
          const { value, grads } = succeeds(() => kx.valueAndGrad((ps) => loss(...ps), xs), `valueAndGrad of ${c.name}`);
          expect(value.shape).toEqual([]);
          grads.forEach((g, i) => {
            expect(g.shape, `${c.name}: gradient ${i} shape`).toEqual(c.shapes[i]);
            expect(g.dtype).toBe('float32');
          });
          if (xs.every((x) => x.size === 0)) return;
          const r = kx.checkGrad(loss, xs, { eps: c.eps ?? 1e-2, maxPoints: 24 });
          if (!r.ok) throw new Error(`${c.name}: gradient differs from finite differences: ${JSON.stringify(r.worst)}`);
        }),
      ),
      params(750),
    );
  });
});

describe('properties: regressions the gradient property found', () => {
  it('matmul of a batched a by a plain matrix differentiates when k or n is 0 (the shared-matrix gradient reshaped to [-1, 0])', () =>
    noLeak(() => {
      for (const [sa, sb] of [[[1, 1, 1], [1, 0]], [[2, 3, 0], [0, 2]], [[0, 1, 0], [0, 1]]] as const) {
        const a = kx.ones([...sa]);
        const b = kx.ones([...sb]);
        const { grads } = succeeds(() => kx.valueAndGrad(([x, y]) => kx.sum(kx.matmul(x!, y!)), [a, b]), `grad of matmul ${show(sa)} · ${show(sb)}`);
        expect(grads.map((g) => g.shape)).toEqual([sa, sb]);
        // d/dA = 1·Bᵀ summed: each element of dA is the row sum of B (n ones, or 0 when n = 0).
        expect(read(grads[0]!)).toEqual(new Array(sizeOf(sa)).fill(sb[1]));
        expect(read(grads[1]!)).toEqual(new Array(sizeOf(sb)).fill(sizeOf(sa) / Math.max(1, sa[2])));
      }
    }));
});
