import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { caseReport, cpuFlags, expectClose, expectCode, randomTensor, tolerance } from './helpers.js';

/** matmulPacked against matmul with the weight itself, for a [..., k] input and a [n, k] (transB) or [k, n] weight. */
function checkAgainstMatmul(aShape: number[], k: number, n: number, transB: boolean, dtype: kx.DType, withBias: boolean): void {
  kx.tidy(() => {
    const a = kx.cast(randomTensor([...aShape, k], 1), dtype);
    const w = kx.cast(randomTensor(transB ? [n, k] : [k, n], 2, 0.2), dtype);
    const bias = withBias ? kx.cast(randomTensor([n], 3), dtype) : undefined;
    const packed = kx.packWeight(w, { transB });
    expect([packed.k, packed.n]).toEqual([k, n]);
    const y = kx.matmulPacked(a, packed, { bias });
    expect(y.shape).toEqual([...aShape, n]);
    expect(y.dtype).toBe(dtype);
    const a2 = kx.reshape(a, [-1, k]);
    const expected = kx.reshape(kx.matmul(a2, w, { transB, bias }), [...aShape, n]);
    expectClose(y, expected, tolerance(dtype, 'reduction'));
  });
}

describe('packWeight + matmulPacked equal matmul', () => {
  const shapes: [number[], number, number][] = [
    [[1], 5, 3],
    [[7], 64, 100],
    [[2, 33], 256, 256],
    [[1, 32], 256, 1024],
    [[3, 5], 1024, 7],
    // column panels (n >= 512 at fewer than 128 rows): a ragged last panel, k not a block multiple
    [[2, 17], 100, 1000],
    [[48], 768, 3072],
  ];
  for (const [aShape, k, n] of shapes) {
    for (const transB of [true, false]) {
      it(`[${aShape}, ${k}] · [${k}, ${n}]${transB ? ' (w stored [n, k])' : ''}`, () => checkAgainstMatmul(aShape, k, n, transB, 'float32', true));
    }
  }
  it('without a bias', () => checkAgainstMatmul([4, 9], 48, 80, true, 'float32', false));
  it('float16 and bfloat16 operands (multiplied in float32, rounded once)', () => {
    checkAgainstMatmul([5], 96, 40, true, 'float16', true);
    checkAgainstMatmul([5], 96, 40, true, 'bfloat16', true);
  });
  it('an empty batch gives an empty output', () =>
    kx.tidy(() => {
      const packed = kx.packWeight(randomTensor([6, 4], 1), { transB: true });
      expect(kx.matmulPacked(kx.zeros([0, 4]), packed).shape).toEqual([0, 6]);
    }));
});

describe('packed weights refuse what they cannot do', () => {
  it('a weight updated in place since packing (an optimizer step) is stale: E_ARG, and a new pack works', () =>
    kx.tidy(() => {
      const w = randomTensor([8, 16], 4);
      const packed = kx.packWeight(w, { transB: true });
      const x = randomTensor([2, 16], 5);
      const before = kx.matmulPacked(x, packed).toFloat32Array().slice();
      kx.sgdUpdate(w, kx.ones([8, 16]), null, { lr: 0.1, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0, first: true });
      expect(packed.isCurrent).toBe(false);
      expectCode(() => kx.matmulPacked(x, packed), 'E_ARG');
      const fresh = kx.packWeight(w, { transB: true });
      const after = kx.matmulPacked(x, fresh);
      expectClose(after, kx.matmul(x, w, { transB: true }), tolerance('float32', 'reduction'));
      expect(Array.from(after.toFloat32Array())).not.toEqual(Array.from(before));
    }));
  it('a disposed packed weight is E_ARG', () =>
    kx.tidy(() => {
      const packed = kx.packWeight(randomTensor([8, 16], 4), { transB: true });
      packed.dispose();
      expectCode(() => kx.matmulPacked(randomTensor([2, 16], 5), packed), 'E_ARG');
    }));
  it('not under a gradient tape: E_ARG', () =>
    kx.tidy(() => {
      const w = randomTensor([8, 16], 4);
      const packed = kx.packWeight(w, { transB: true });
      const x = randomTensor([2, 16], 5);
      expectCode(() => kx.valueAndGrad(([v]) => kx.sum(kx.matmulPacked(v!, packed)), [x]), 'E_ARG');
      expectCode(() => kx.valueAndGrad(([v]) => kx.sum(kx.matmulPacked(x, kx.packWeight(v!))), [w]), 'E_ARG');
    }));
  it('shape, dtype and argument errors', () =>
    kx.tidy(() => {
      const packed = kx.packWeight(randomTensor([8, 16], 4), { transB: true });
      expectCode(() => kx.matmulPacked(randomTensor([2, 15], 5), packed), 'E_SHAPE');
      expectCode(() => kx.matmulPacked(kx.cast(randomTensor([2, 16], 5), 'float16'), packed), 'E_DTYPE');
      expectCode(() => kx.matmulPacked(randomTensor([2, 16], 5), packed, { bias: kx.zeros([7]) }), 'E_SHAPE');
      expectCode(() => kx.packWeight(randomTensor([2, 3, 4], 1)), 'E_SHAPE');
      expectCode(() => kx.packWeight(kx.zeros([0, 4])), 'E_SHAPE');
      expectCode(() => kx.matmulPacked(randomTensor([2, 16], 5), { k: 16, n: 8 } as unknown as kx.PackedWeight), 'E_ARG');
    }));
});

describe('the CPU products do not depend on the thread count', () => {
  // ops/matmul splits a product into parts over the pool: chunks of rows, or, with few rows, the
  // columns (a plain weight's, or a packed weight's panels), all in shapes fixed by the product's
  // shape. Checked in a child process per oneDNN ISA (read once, at its first primitive): the
  // best this CPU has, and AVX2, whose sgemm rounds a row differently at other places in other m.
  const isas: Array<[string, string | undefined]> = [['best', undefined], ['AVX2', 'AVX2']];
  for (const [label, cap] of isas) {
    // (skipped where the CPU lacks AVX2)
    it.skipIf(cap === 'AVX2' && !cpuFlags.has('avx2'))(`${label}: 1, 2 and 3 threads give the same bits, plain and packed`, () => {
      const differing = caseReport<string[]>('matmul_threads_cases.ts', { DNNL_MAX_CPU_ISA: cap });
      expect(differing).toEqual([]);
    });
  }
});
