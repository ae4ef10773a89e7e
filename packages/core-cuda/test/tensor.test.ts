import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectCode } from './helpers.js';

describe('tensors', () => {
  it('carry data in and out as typed arrays of their dtype', () => {
    const f = kx.tensor(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
    expect(f.shape).toEqual([2, 3]);
    expect(f.dtype).toBe('float32');
    expect(f.device).toBe('cpu');
    expect(f.size).toBe(6);
    expect(f.dataSync()).toBeInstanceOf(Float32Array);
    expect(Array.from(f.dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
    const i = kx.tensor(new Int32Array([7, -8]));
    expect(i.dtype).toBe('int32');
    expect(Array.from(i.dataSync())).toEqual([7, -8]);
    const u = kx.tensor(new Uint8Array([0, 255]));
    expect(u.dtype).toBe('uint8');
    const h = kx.tensor([1.5, -2], [2], { dtype: 'bfloat16' });
    expect(h.dataSync()).toBeInstanceOf(Uint16Array);
    expect(Array.from(h.dataSync())).toEqual([0x3fc0, 0xc000]);
    expect(Array.from(h.toFloat32Array())).toEqual([1.5, -2]);
    kx.dispose([f, i, u, h]);
  });

  it('takes Uint16Array as the raw bits of half tensors', () => {
    const h = kx.tensor(new Uint16Array([0x3c00, 0x7c00, 0x0001]), [3], { dtype: 'float16' });
    expect(Array.from(h.toFloat32Array())).toEqual([1, Infinity, 2 ** -24]);
    h.dispose();
  });

  it('makes scalars, zeros, ones and filled tensors', () => {
    const s = kx.scalar(3);
    expect(s.shape).toEqual([]);
    expect(s.item()).toBe(3);
    const z = kx.zeros([2, 0, 3]);
    expect(z.size).toBe(0);
    expect(z.toFloat32Array().length).toBe(0);
    const o = kx.ones([3], { dtype: 'float16' });
    expect(Array.from(o.toFloat32Array())).toEqual([1, 1, 1]);
    const f = kx.full([2], 7, { dtype: 'int32' });
    expect(Array.from(f.dataSync())).toEqual([7, 7]);
    kx.dispose([s, z, o, f]);
  });

  it('fills every dtype with the bits tensor() gives the same values (zeros by memset, others by broadcast)', () => {
    for (const dtype of kx.DTYPES) {
      const values = kx.isFloating(dtype) ? [0, -0, 1 / 3, -2.5e-5, NaN, Infinity] : [0, 7, 255];
      for (const v of values) {
        const filled = kx.full([3, 5], v, { dtype });
        const want = kx.tensor(new Array(15).fill(v), [3, 5], { dtype });
        expect(filled.dtype).toBe(dtype);
        expect(filled.shape).toEqual([3, 5]);
        expect(Buffer.from(filled.dataSync().buffer).equals(Buffer.from(want.dataSync().buffer)), `${dtype} ${v}`).toBe(true);
        kx.dispose([filled, want]);
      }
    }
    const z = kx.zeros([4], { dtype: 'bfloat16' });
    expect(Array.from(z.toFloat32Array())).toEqual([0, 0, 0, 0]);
    z.dispose();
    expectCode(() => kx.zeros([2], { dtype: 'float64' as kx.DType }), 'E_DTYPE');
    expectCode(() => kx.full([2], 1, { device: 'tpu' }), 'E_ARG');
  });

  it('reshapes as a view with one inferred dimension', () => {
    const x = kx.tensor(new Float32Array(12).map((_, i) => i), [3, 4]);
    const y = kx.reshape(x, [2, -1, 3]);
    expect(y.shape).toEqual([2, 2, 3]);
    expect(Array.from(y.dataSync())).toEqual(Array.from(x.dataSync()));
    const before = kx.memory().storages;
    const z = kx.reshape(y, [12]);
    expect(kx.memory().storages).toBe(before); // a view allocates nothing
    expectCode(() => kx.reshape(x, [5, -1]), 'E_SHAPE');
    expectCode(() => kx.reshape(x, [-1, -1]), 'E_SHAPE');
    kx.dispose([x, y, z]);
  });

  it('reports what the build can do', () => {
    const info = kx.buildInfo();
    expect(info.blas).toMatch(/^oneDNN \d+\.\d+\.\d+$/);
    expect(typeof info.simd).toBe('string');
    expect(info.threads).toBeGreaterThanOrEqual(1);
    expect(kx.devices()[0]!.name).toBe('cpu');
    expect(kx.cuda.isAvailable()).toBe(kx.devices().length > 1);
    if (!kx.cuda.isAvailable()) expect(kx.cuda.unavailableReason().length).toBeGreaterThan(0);
    // where matmul's cuBLASLt comes from, or why it is not used (CI has no libcublasLt)
    if (!info.cuda) expect(info.cublasLt).toBe('none (built without CUDA)');
    else expect(info.cublasLt).toMatch(/libcublasLt|not found|turned off/);
  });

  it('has a CPU kernel for every op in the native table', () => {
    const missing = kx.buildInfo().ops.filter((op) => !op.cpu).map((op) => op.name);
    expect(missing).toEqual([]);
  });
});

describe('memory', () => {
  it('tidy frees what it made, except its result and kept tensors', () => {
    const start = kx.memory();
    let kept: kx.Tensor | undefined;
    const out = kx.tidy(() => {
      kx.tensor([1, 2, 3]);
      kept = kx.keep(kx.tensor([4]));
      return { a: kx.tensor([5, 6]), list: [kx.tensor([7])] };
    });
    expect(kx.memory().tensors).toBe(start.tensors + 3);
    expect(out.a.isDisposed).toBe(false);
    expect(kept!.isDisposed).toBe(false);
    kx.dispose([out, kept!]);
    expect(kx.memory().tensors).toBe(start.tensors);
    expect(kx.memory().bytes).toBe(start.bytes);
  });

  it('nested tidy hands results to the enclosing scope', () => {
    const start = kx.memory().tensors;
    kx.tidy(() => {
      const inner = kx.tidy(() => kx.tensor([1]));
      expect(inner.isDisposed).toBe(false);
      return undefined;
    });
    expect(kx.memory().tensors).toBe(start);
  });

  it('tidy frees on throw too', () => {
    const start = kx.memory().tensors;
    expect(() =>
      kx.tidy(() => {
        kx.tensor([1, 2]);
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(kx.memory().tensors).toBe(start);
  });

  it('dispose is idempotent and use after dispose is E_DISPOSED', () => {
    const t = kx.tensor([1, 2]);
    t.dispose();
    t.dispose();
    expect(t.isDisposed).toBe(true);
    expectCode(() => t.dataSync(), 'E_DISPOSED');
    expectCode(() => kx.cast(t, 'float16'), 'E_DISPOSED');
  });
});
