import { afterAll, describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectClose, expectCode, expectGradOk, loadFixture, randomTensor, tolerance } from './helpers.js';

const fx = loadFixture('embedding_rope');
afterAll(() => kx.dispose(fx.tensors));

const cases = (fx.cases as unknown as Array<{ name: string; op: string; dtype: kx.DType }>).filter((c) => c.op === 'embedding');

function ints(values: number[], shape?: number[]): kx.Tensor {
  return kx.tensor(Int32Array.from(values), shape ?? [values.length]);
}

describe('embedding vs PyTorch', () => {
  for (const c of cases) {
    it(`${c.name} (${c.dtype}): rows gathered exactly`, () => {
      const ids = fx.get(`${c.name}.ids`);
      const table = fx.get(`${c.name}.table`);
      const y = kx.embedding(ids, table);
      expect(y.dtype).toBe(c.dtype);
      expect(y.shape).toEqual([...ids.shape, table.shape[1]]);
      expect(Array.from(y.toFloat32Array())).toEqual(Array.from(fx.get(`${c.name}.y`).toFloat32Array()));
      y.dispose();
    });

    it(`${c.name} (${c.dtype}): table gradient of sum(y * w), repeated ids accumulated`, () => {
      const ids = fx.get(`${c.name}.ids`);
      const w = fx.get(`${c.name}.w`);
      const [dtable] = kx.grad(([t]) => kx.sum(kx.mul(kx.embedding(ids, t!), w)), [fx.get(`${c.name}.table`)]);
      expect(dtable!.dtype).toBe(c.dtype);
      // Sums of a few float32 terms per row: the elementwise bar; halves round once at the end.
      expectClose(dtable!, fx.get(`${c.name}.dtable`), tolerance(c.dtype), c.name);
      dtable!.dispose();
    });
  }
});

describe('embedding gradients', () => {
  it('match finite differences with repeated ids', () => {
    const table = randomTensor([6, 5], 3);
    const ids = ints([0, 2, 2, 5, 0, 2, 1, 1], [2, 4]);
    const w = randomTensor([2, 4, 5], 4);
    expectGradOk((t) => kx.sum(kx.mul(kx.embedding(ids, t!), w)), [table], { eps: 1e-2, atol: 1e-4, rtol: 1e-3 });
    kx.dispose([table, ids, w]);
  });

  it('is a deterministic scatter-add: exact sums, unused rows zero, same bits for any thread count', () => {
    const threads = kx.buildInfo().threads;
    const n = 4000;
    const idv = Array.from({ length: n }, (_, i) => (i * 7919) % 13);
    const ids = ints(idv);
    const dy = randomTensor([n, 9], 12);
    const run = () => {
      const out = kx.runKernel('embedding_backward', [ids, dy], { rows: 20 })[0]!;
      const v = Array.from(out.toFloat32Array());
      out.dispose();
      return v;
    };
    try {
      kx.setNumThreads(1);
      const one = run();
      kx.setNumThreads(6);
      expect(run()).toEqual(one);
      // The same float32 sums in position order, done here in JS.
      const g = dy.toFloat32Array();
      const want = new Float32Array(20 * 9);
      idv.forEach((id, i) => {
        for (let j = 0; j < 9; j++) want[id * 9 + j] = Math.fround(want[id * 9 + j]! + g[i * 9 + j]!);
      });
      expect(one).toEqual(Array.from(want));
      expect(one.slice(13 * 9).every((v) => v === 0)).toBe(true);
    } finally {
      kx.setNumThreads(threads);
    }
    kx.dispose([ids, dy]);
  });
});

describe('embedding shapes', () => {
  it('keeps the ids shape (scalar, empty and 3-D ids)', () => {
    const table = randomTensor([4, 3], 1);
    const scalarId = kx.tensor(Int32Array.from([2]), []);
    const y0 = kx.embedding(scalarId, table);
    expect(y0.shape).toEqual([3]);
    expect(Array.from(y0.toFloat32Array())).toEqual(Array.from(table.toFloat32Array().subarray(6, 9)));
    const empty = kx.tensor(new Int32Array(0), [0]);
    const y1 = kx.embedding(empty, table);
    expect(y1.shape).toEqual([0, 3]);
    const y2 = kx.embedding(ints([3, 0, 1, 2, 3, 3, 0, 1], [2, 2, 2]), table);
    expect(y2.shape).toEqual([2, 2, 2, 3]);
    kx.dispose([table, scalarId, y0, empty, y1, y2]);
  });
});

describe('embedding errors', () => {
  const table = randomTensor([5, 3], 2);
  afterAll(() => table.dispose());

  it('rejects ids outside [0, V) with E_ARG naming the id', () => {
    for (const bad of [5, -1, 1000000]) {
      const ids = ints([0, 1, bad, 2]);
      expectCode(() => kx.embedding(ids, table), 'E_ARG');
      expect(() => kx.embedding(ids, table)).toThrow(new RegExp(`id ${bad} `));
      ids.dispose();
    }
  });

  it('rejects float ids (E_DTYPE) and integer tables (E_DTYPE), also natively', () => {
    const fids = kx.tensor([0, 1]);
    expectCode(() => kx.embedding(fids, table), 'E_DTYPE');
    expectCode(() => kx.runKernel('embedding', [fids, table]), 'E_DTYPE');
    const itable = kx.tensor(new Int32Array(6), [2, 3]);
    const ids = ints([0]);
    expectCode(() => kx.embedding(ids, itable), 'E_DTYPE');
    kx.dispose([fids, itable, ids]);
  });

  it('rejects a table that is not [V, D] (E_SHAPE), also natively', () => {
    const flat = kx.ones([5]);
    const ids = ints([0]);
    expectCode(() => kx.embedding(ids, flat), 'E_SHAPE');
    expectCode(() => kx.runKernel('embedding', [ids, flat]), 'E_SHAPE');
    kx.dispose([flat, ids]);
  });

  it('checks embedding_backward natively: rows, dy shape, ids in range', () => {
    const ids = ints([0, 4]);
    const dy = kx.ones([2, 3]);
    const dyBad = kx.ones([3, 3]);
    expectCode(() => kx.runKernel('embedding_backward', [ids, dy], { rows: 4 }), 'E_ARG');
    expectCode(() => kx.runKernel('embedding_backward', [ids, dy], { rows: -1 }), 'E_ARG');
    expectCode(() => kx.runKernel('embedding_backward', [ids, dy], {}), 'E_ARG');
    expectCode(() => kx.runKernel('embedding_backward', [ids, dyBad], { rows: 5 }), 'E_SHAPE');
    kx.dispose([ids, dy, dyBad]);
  });
});
