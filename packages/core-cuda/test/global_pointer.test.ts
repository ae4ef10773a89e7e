import { afterAll, describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectClose, expectCode, expectGradOk, loadFixture, randomTensor, tolerance } from './helpers.js';

const fx = loadFixture('global_pointer');
afterAll(() => kx.dispose(fx.tensors));

type Case = { name: string; op: string; mask?: boolean; terms?: boolean; tril?: boolean; scale?: number | null; maskZero?: boolean };
const cases = fx.cases as unknown as Case[];
const opt = (name: string): kx.Tensor | null => fx.tensors[name] ?? null;

function gpOptions(c: Case): kx.GlobalPointerOptions {
  return {
    mask: opt(`${c.name}.mask`),
    start: opt(`${c.name}.start`),
    end: opt(`${c.name}.end`),
    tril: c.tril!,
    ...(c.scale != null ? { scale: c.scale } : {}),
  };
}

describe('globalPointerScores vs PyTorch', () => {
  for (const c of cases.filter((c) => c.op === 'global_pointer')) {
    it(`${c.name}: forward (−∞ exactly where masked) and gradients of sum(s·dy)`, () => {
      const q = fx.get(`${c.name}.q`);
      const k = fx.get(`${c.name}.k`);
      const s = kx.globalPointerScores(q, k, gpOptions(c));
      expectClose(s, fx.get(`${c.name}.out`), tolerance('float32', 'reduction'), 'scores');
      s.dispose();
      const params: Record<string, kx.Tensor> = { q, k };
      if (c.terms) Object.assign(params, { start: fx.get(`${c.name}.start`), end: fx.get(`${c.name}.end`) });
      const dy = fx.get(`${c.name}.dy`);
      const { value, grads } = kx.valueAndGrad((p) => {
        const o = kx.globalPointerScores(p.q!, p.k!, { ...gpOptions(c), start: p.start ?? null, end: p.end ?? null });
        // masked entries are −∞: the upstream gradient there must not leak in (select them away).
        const finite = kx.where(keepMask(o), o, 0);
        return kx.sum(kx.mul(finite, dy));
      }, params);
      expectClose(grads.q!, fx.get(`${c.name}.dq`), 1e-5, 'dq');
      expectClose(grads.k!, fx.get(`${c.name}.dk`), 1e-5, 'dk');
      if (c.terms) {
        expectClose(grads.start!, fx.get(`${c.name}.dstart`), 1e-5, 'dstart');
        expectClose(grads.end!, fx.get(`${c.name}.dend`), 1e-5, 'dend');
      }
      kx.dispose([value, grads]);
    });
  }

  it('passes no gradient through masked entries even when the upstream gradient there is NaN', () => {
    const q = randomTensor([1, 2, 4, 4], 1);
    const k = randomTensor([1, 2, 4, 4], 2);
    const mask = kx.tensor(new Uint8Array([1, 1, 1, 0]), [1, 4]);
    const g = kx.grad((p) => kx.sum(kx.exp(kx.globalPointerScores(p[0]!, p[1]!, { mask }))), [q, k]);
    for (const t of g) expect(t.toFloat32Array().every(Number.isFinite)).toBe(true);
    kx.dispose([q, k, mask, g]);
  });

  it('matches finite differences (efficient layout: shared q/k, per-head start/end)', () => {
    const q = randomTensor([2, 1, 5, 4], 3);
    const k = randomTensor([2, 1, 5, 4], 4);
    const st = randomTensor([2, 3, 5], 5);
    const en = randomTensor([2, 3, 5], 6);
    const mask = kx.tensor(new Uint8Array([1, 1, 1, 1, 0, 1, 1, 1, 1, 1]), [2, 5]);
    const w = randomTensor([2, 3, 5, 5], 7);
    expectGradOk(
      (a, b, c, d) => {
        const s = kx.globalPointerScores(a!, b!, { mask, start: c!, end: d! });
        return kx.sum(kx.mul(kx.where(keepMask(s), s, 0), w));
      },
      [q, k, st, en],
      { eps: 1e-2 },
    );
    kx.dispose([q, k, st, en, mask, w]);
  });

  it('float16 and bfloat16 inputs agree with float32', () => {
    const q = randomTensor([2, 2, 6, 8], 8);
    const k = randomTensor([2, 2, 6, 8], 9);
    const ref = kx.globalPointerScores(q, k, { tril: false });
    for (const dt of ['float16', 'bfloat16'] as const) {
      const s = kx.globalPointerScores(q.cast(dt), k.cast(dt), { tril: false });
      expect(s.dtype).toBe(dt);
      expectClose(s.cast('float32'), ref, 4 * tolerance(dt), dt);
    }
    kx.dispose([q, k, ref]);
  });

  it('rejects bad input with typed errors', () => {
    const q = randomTensor([1, 2, 3, 4], 1);
    const k3 = randomTensor([1, 2, 3, 2], 2);
    expectCode(() => kx.globalPointerScores(q, k3), 'E_SHAPE');
    expectCode(() => kx.globalPointerScores(q, q.cast('float16')), 'E_DTYPE');
    expectCode(() => kx.globalPointerScores(q, q, { mask: kx.ones([1, 3]) }), 'E_DTYPE');
    expectCode(() => kx.globalPointerScores(q, q, { mask: kx.ones([1, 4], { dtype: 'uint8' }) }), 'E_SHAPE');
    expectCode(() => kx.globalPointerScores(q, q, { start: kx.zeros([1, 2, 3]) }), 'E_ARG');
    expectCode(() => kx.globalPointerScores(q, q, { start: kx.zeros([1, 3, 3]), end: kx.zeros([1, 3, 3]) }), 'E_SHAPE');
    expectCode(() => kx.globalPointerScores(q, q, { scale: NaN }), 'E_ARG');
    expectCode(() => kx.runKernel('global_pointer', [q, k3, null, null, null]), 'E_SHAPE');
  });
});

/** uint8 mask of the finite entries of s. */
function keepMask(s: kx.Tensor): kx.Tensor {
  const data = s.toFloat32Array();
  return kx.tensor(Uint8Array.from(data, (v) => (Number.isFinite(v) ? 1 : 0)), s.shape);
}

describe('multilabel categorical cross-entropy', () => {
  it('TEST-VECTORS: dense = sparse = 1.528106214', () => {
    const s = kx.tensor([2.0, -1.0, 0.5, -3.0, -Infinity, 1.0], [6]);
    const t = kx.tensor([1, 0, 0, 0, 0, 1], [6]);
    const idx = kx.tensor(new Int32Array([0, 5]), [2]);
    // float32: a few ulps (the sparse form's a + ln(1 − e^{b−a}) cancels partly)
    expect(Math.abs(kx.multilabelCrossEntropy(s, t).item() / 1.528106214 - 1)).toBeLessThan(1e-6);
    expect(Math.abs(kx.sparseMultilabelCrossEntropy(s, idx).item() / 1.528106214 - 1)).toBeLessThan(1e-6);
    // with class 0 as padding, [5, 0] means the positive set {5}
    const s2 = kx.tensor([0, 2.0, -1.0, 0.5, -3.0, -Infinity, 1.0], [7]);
    const t2 = kx.tensor([0, 1, 0, 0, 0, 0, 1], [7]);
    const idx2 = kx.tensor(new Int32Array([1, 6, 0]), [3]);
    const sparse = kx.sparseMultilabelCrossEntropy(s2, idx2, { maskZero: true }).item();
    const dense = kx.multilabelCrossEntropy(kx.slice(s2, [1], [6]), kx.slice(t2, [1], [6])).item();
    expect(Math.abs(sparse / dense - 1)).toBeLessThan(1e-6);
  });

  for (const c of cases.filter((c) => c.op !== 'global_pointer')) {
    it(`${c.name}: ${c.op} per-row losses and gradients vs PyTorch`, () => {
      const scores = fx.get(`${c.name}.scores`);
      const dloss = fx.get(`${c.name}.dloss`);
      const lossOf = (s: kx.Tensor): kx.Tensor =>
        c.op === 'multilabel_ce'
          ? kx.multilabelCrossEntropy(s, fx.get(`${c.name}.labels`), { reduction: 'none' })
          : kx.sparseMultilabelCrossEntropy(s, fx.get(`${c.name}.indices`), { maskZero: c.maskZero!, reduction: 'none' });
      const loss = lossOf(scores);
      expect(loss.dtype).toBe('float32');
      expectClose(loss, fx.get(`${c.name}.loss`), 1e-5, 'loss');
      const { value, grads } = kx.valueAndGrad(([s]) => kx.sum(kx.mul(lossOf(s!), dloss)), [scores]);
      expectClose(grads[0]!, fx.get(`${c.name}.dscores`), 1e-5, 'dscores');
      kx.dispose([loss, value, grads]);
    });
  }

  it('reductions: mean over rows by default, sum, none', () => {
    const s = randomTensor([3, 2, 5], 11, 3);
    const t = kx.tensor(Float32Array.from({ length: 30 }, (_, i) => (i % 4 === 0 ? 1 : 0)), [3, 2, 5]);
    const none = kx.multilabelCrossEntropy(s, t, { reduction: 'none' });
    expect(none.shape).toEqual([3, 2]);
    const rows = none.toFloat32Array();
    const total = rows.reduce((a, b) => a + b, 0);
    expect(kx.multilabelCrossEntropy(s, t).item()).toBeCloseTo(total / 6, 5);
    expect(kx.multilabelCrossEntropy(s, t, { reduction: 'sum' }).item()).toBeCloseTo(total, 4);
    expectCode(() => kx.multilabelCrossEntropy(s, t, { reduction: 'avg' as never }), 'E_ARG');
    kx.dispose([s, t, none]);
  });

  it('dense and sparse agree, in value and gradient, on random GlobalPointer-like rows', () => {
    const R = 6;
    const C = 40;
    // class 0 is padding for the sparse form; for the dense form it is a masked (−∞) score
    const raw = randomTensor([R, C], 21, 4).toFloat32Array();
    for (let r = 0; r < R; r++) raw[r * C] = -Infinity;
    const s = kx.tensor(raw, [R, C]);
    const pos = [[3, 17], [5], [1, 2, 39], [8], [30, 31], [12]];
    const P = 3;
    const idx = new Int32Array(R * P);
    const dense = new Float32Array(R * C);
    pos.forEach((row, r) => row.forEach((c, k) => ((idx[r * P + k] = c), (dense[r * C + c] = 1))));
    const t = kx.tensor(dense, [R, C]);
    const ix = kx.tensor(idx, [R, P]);
    const gd = kx.valueAndGrad(([x]) => kx.multilabelCrossEntropy(x!, t), [s]);
    const gs = kx.valueAndGrad(([x]) => kx.sparseMultilabelCrossEntropy(x!, ix, { maskZero: true }), [s]);
    expect(gs.value.item()).toBeCloseTo(gd.value.item(), 5);
    expectClose(gs.grads[0]!, gd.grads[0]!, 1e-5, 'grad');
    kx.dispose([s, t, ix, gd, gs]);
  });

  it('finite differences (dense with soft labels, sparse)', () => {
    const s = randomTensor([3, 7], 31, 2);
    const t = kx.tensor(Float32Array.from({ length: 21 }, (_, i) => [0, 1, 0.3, 0, 0.9, 0, 1][i % 7]!), [3, 7]);
    expectGradOk((x) => kx.multilabelCrossEntropy(x!, t, { reduction: 'sum' }), [s]);
    const ix = kx.tensor(new Int32Array([1, 4, 2, 0, 6, 3]), [3, 2]);
    expectGradOk((x) => kx.sparseMultilabelCrossEntropy(x!, ix, { reduction: 'sum' }), [s]);
    kx.dispose([s, t, ix]);
  });

  it('a fully masked row gives loss 0 and zero gradient (no NaN)', () => {
    const s = kx.full([2, 5], -Infinity);
    const t = kx.zeros([2, 5]);
    const { value, grads } = kx.valueAndGrad(([x]) => kx.multilabelCrossEntropy(x!, t), [s]);
    expect(value.item()).toBe(0);
    expect(Array.from(grads[0]!.toFloat32Array())).toEqual(new Array(10).fill(0));
    kx.dispose([s, t, value, grads]);
  });

  it('half scores: float32 losses close to the float32 reference', () => {
    const s = randomTensor([4, 16], 41, 3);
    const t = kx.tensor(Float32Array.from({ length: 64 }, (_, i) => (i % 5 === 0 ? 1 : 0)), [4, 16]);
    const ref = kx.multilabelCrossEntropy(s, t, { reduction: 'none' });
    for (const dt of ['float16', 'bfloat16'] as const) {
      const sh = s.cast(dt);
      const l = kx.multilabelCrossEntropy(sh, t.cast(dt), { reduction: 'none' });
      expect(l.dtype).toBe('float32');
      // the scores themselves are rounded to the half type: compare against float32 of the rounded scores
      const r2 = kx.multilabelCrossEntropy(sh.cast('float32'), t, { reduction: 'none' });
      expectClose(l, r2, 1e-5, dt);
      expectClose(l, ref, 8 * tolerance(dt), dt);
    }
  });

  it('rejects bad input with typed errors', () => {
    const s = randomTensor([2, 5], 1);
    expectCode(() => kx.multilabelCrossEntropy(s, kx.zeros([2, 4])), 'E_SHAPE');
    expectCode(() => kx.multilabelCrossEntropy(s, kx.zeros([2, 5], { dtype: 'int32' })), 'E_DTYPE');
    expectCode(() => kx.sparseMultilabelCrossEntropy(s, kx.zeros([2, 2])), 'E_DTYPE');
    expectCode(() => kx.sparseMultilabelCrossEntropy(s, kx.zeros([3, 2], { dtype: 'int32' })), 'E_SHAPE');
    expectCode(() => kx.sparseMultilabelCrossEntropy(s, kx.tensor(new Int32Array([0, 5, 1, 1]), [2, 2])), 'E_ARG');
    expectCode(() => kx.sparseMultilabelCrossEntropy(s, kx.tensor(new Int32Array([0, -1, 1, 1]), [2, 2])), 'E_ARG');
    expectCode(() => kx.sparseMultilabelCrossEntropy(s, kx.zeros([2, 1], { dtype: 'int32' }), { epsilon: 0 }), 'E_ARG');
    expectCode(() => kx.runKernel('multilabel_ce', [s, kx.zeros([5, 2])]), 'E_SHAPE');
    expectCode(() => kx.runKernel('sparse_multilabel_ce', [s, kx.tensor(new Int32Array([9]), [1, 1])]), 'E_SHAPE');
  });
});
