import { afterAll, describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { loadFixture } from './helpers.js';

const fx = loadFixture('cast');
afterAll(() => kx.dispose(fx.tensors));

describe('cast', () => {
  it('rounds float32 to float16 bit for bit like PyTorch (ties, subnormals, overflow, NaN)', () => {
    const y = kx.cast(fx.get('cast.x'), 'float16');
    expect(Array.from(y.dataSync())).toEqual(Array.from(fx.get('cast.f16').dataSync()));
    expect(Array.from(y.toFloat32Array())).toEqual(Array.from(fx.get('cast.f16_back').dataSync()));
    y.dispose();
  });

  it('rounds float32 to bfloat16 bit for bit like PyTorch', () => {
    // Every NaN becomes 0x7fc0, c10::BFloat16's rule (PyTorch's scalar and CUDA paths); PyTorch's
    // AVX-512 CPU path writes 0xffff instead, so NaNs are compared as NaNs.
    const y = kx.cast(fx.get('cast.x'), 'bfloat16');
    const bits = Array.from(y.dataSync());
    const want = Array.from(fx.get('cast.bf16').dataSync());
    const isNaNBits = (b: number) => (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0;
    want.forEach((w, i) => (isNaNBits(w) ? expect(bits[i]).toBe(0x7fc0) : expect(bits[i]).toBe(w)));
    expect(Array.from(y.toFloat32Array())).toEqual(Array.from(fx.get('cast.bf16_back').dataSync()));
    y.dispose();
  });

  it('converts between the two half types through float32', () => {
    const h = kx.cast(fx.get('cast.x'), 'float16');
    const b = kx.cast(h, 'bfloat16');
    const direct = kx.cast(kx.tensor(h.toFloat32Array()), 'bfloat16');
    expect(Array.from(b.dataSync())).toEqual(Array.from(direct.dataSync()));
    kx.dispose([h, b, direct]);
  });

  it('truncates floats toward zero into int32, saturating, NaN to 0', () => {
    const y = kx.cast(fx.get('cast.ints_in'), 'int32');
    expect(Array.from(y.dataSync())).toEqual(Array.from(fx.get('cast.ints_out').dataSync()));
    const edge = kx.cast(kx.tensor([NaN, Infinity, -Infinity, 3e9, -3e9]), 'int32');
    expect(Array.from(edge.dataSync())).toEqual([0, 2147483647, -2147483648, 2147483647, -2147483648]);
    kx.dispose([y, edge]);
  });

  it('converts int32 to half types like PyTorch', () => {
    const bf = kx.cast(fx.get('cast.int_to_bf16'), 'bfloat16');
    expect(Array.from(bf.dataSync())).toEqual(Array.from(fx.get('cast.int_to_bf16_out').dataSync()));
    const h = kx.cast(fx.get('cast.int_to_f16'), 'float16');
    expect(Array.from(h.dataSync())).toEqual(Array.from(fx.get('cast.int_to_f16_out').dataSync()));
    kx.dispose([bf, h]);
  });

  it('saturates floats into uint8 and keeps the low byte of int32', () => {
    const u = kx.cast(kx.tensor([-5, 0.7, 12.9, 255.5, 300, NaN]), 'uint8');
    expect(Array.from(u.dataSync())).toEqual([0, 0, 12, 255, 255, 0]);
    const w = kx.cast(kx.tensor(new Int32Array([-1, 256, 513])), 'uint8');
    expect(Array.from(w.dataSync())).toEqual([255, 0, 1]);
    kx.dispose([u, w]);
  });

  it('makes half tensors from float data with the same rounding', () => {
    const t = kx.tensor(fx.get('cast.x').toFloat32Array(), undefined, { dtype: 'float16' });
    expect(Array.from(t.dataSync())).toEqual(Array.from(fx.get('cast.f16').dataSync()));
    t.dispose();
  });
});
