// Each misuse is a KexueError with its code, never a crash; the process stays usable afterwards.
import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectCode } from './helpers.js';

describe('errors', () => {
  it('E_SHAPE: shapes that do not fit, data that does not match its shape', () => {
    const a = kx.zeros([2, 3]);
    const b = kx.zeros([4]);
    expectCode(() => kx.add(a, b), 'E_SHAPE');
    expectCode(() => kx.runKernel('add', [a, b]), 'E_SHAPE'); // the native side checks again
    expectCode(() => kx.matmul(a, kx.zeros([2, 3])), 'E_SHAPE');
    expectCode(() => kx.tensor([1, 2, 3], [2, 2]), 'E_SHAPE');
    expectCode(() => kx.tensor(new Float32Array(5), [2, 3]), 'E_SHAPE');
    kx.dispose([a, b]);
  });

  it('E_DTYPE: a dtype an op does not take', () => {
    const i = kx.tensor(new Int32Array([1, 2]));
    expectCode(() => kx.add(i, i), 'E_DTYPE');
    expectCode(() => kx.runKernel('exp', [i]), 'E_ARG'); // not an op name: the table says so
    expectCode(() => kx.runKernel('unary', [i], { fn: 'exp' }), 'E_DTYPE');
    expectCode(() => kx.tensor([1], [1], { dtype: 'float64' as kx.DType }), 'E_DTYPE');
    expectCode(() => kx.tensor(new Uint16Array([1]), [1]), 'E_DTYPE'); // half bits need a half dtype
    i.dispose();
  });

  it('E_ARG: ids outside the embedding table, bad data, negative dimensions, unknown attributes', () => {
    const table = kx.zeros([5, 3]);
    const ids = kx.tensor(new Int32Array([0, 5]));
    const neg = kx.tensor(new Int32Array([-1]));
    expectCode(() => kx.embedding(ids, table), 'E_ARG');
    expectCode(() => kx.embedding(neg, table), 'E_ARG');
    expectCode(() => kx.tensor('abc' as unknown as number[]), 'E_ARG');
    expectCode(() => kx.tensor({ length: 2 } as unknown as number[]), 'E_ARG');
    expectCode(() => kx.tensor([1, 'x'] as unknown as number[]), 'E_ARG');
    expectCode(() => kx.tensor([], [-1]), 'E_ARG');
    expectCode(() => kx.zeros([2, -3]), 'E_ARG');
    expectCode(() => kx.tensor([1, 2], [2.5] as number[]), 'E_ARG');
    expectCode(() => kx.runKernel('cast', [table], { dtype: 'float16', typo: 1 }), 'E_ARG');
    expectCode(() => kx.runKernel('no_such_op', [table]), 'E_ARG');
    kx.dispose([table, ids, neg]);
  });

  it('E_ARG / E_OOM: shapes too large to exist are refused, not wrapped around', () => {
    const one = kx.zeros([1]);
    expectCode(() => kx.broadcastTo(one, [2 ** 40, 2 ** 40]), 'E_ARG'); // 2^80 elements
    expectCode(() => kx.runKernel('broadcast_to', [one], { shape: [2 ** 31, 2 ** 31, 2 ** 31] }), 'E_ARG');
    expectCode(() => kx.zeros([1e6, 1e6]), 'E_OOM');
    one.dispose();
  });

  it('E_DISPOSED: a disposed tensor', () => {
    const t = kx.tensor([1, 2]);
    const u = kx.tensor([3, 4]);
    t.dispose();
    expectCode(() => kx.add(t, u), 'E_DISPOSED');
    expectCode(() => t.toFloat32Array(), 'E_DISPOSED');
    u.dispose();
  });

  it('E_NO_CUDA: asking for CUDA where there is none', () => {
    if (kx.cuda.isAvailable()) return; // the GPU suite covers devices that exist
    expectCode(() => kx.tensor([1], [1], { device: 'cuda' }), 'E_NO_CUDA');
    const t = kx.tensor([1]);
    expectCode(() => t.to('cuda:0'), 'E_NO_CUDA');
    expectCode(() => kx.zeros([2], { device: 'cuda:1' }), 'E_NO_CUDA');
    t.dispose();
    expectCode(() => kx.tensor([1], [1], { device: 'tpu' }), 'E_ARG');
  });

  it.skipIf(!kx.cuda.isAvailable())('E_DEVICE: tensors on different devices (needs a GPU)', () => {
    const a = kx.tensor([1, 2]);
    const b = a.to('cuda');
    expectCode(() => kx.add(a, b), 'E_DEVICE');
    kx.dispose([a, b]);
  });

  it('the process is still usable after every error above', () => {
    const y = kx.add(kx.tensor([1, 2]), kx.tensor([3, 4]));
    expect(Array.from(y.dataSync())).toEqual([4, 6]);
  });
});
