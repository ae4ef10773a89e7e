/**
 * The CUDA device runtime (native/cuda/context.cu, allocator.cu): copies of every dtype both ways,
 * the caching allocator's counters and reuse, E_OOM with sizes, bad device indices. Where no GPU
 * answers, the GPU suite is skipped and the first suite checks that CUDA fails with typed errors
 * and a stated reason instead.
 */
import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { native } from '../src/native.js';
import { expectCode } from './helpers.js';

const gpu = kx.cuda.isAvailable();

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  return '';
}

/** Seeded values that fill every dtype's range a little (not just small integers). */
function sample(dtype: kx.DType, n: number): kx.RawData {
  let s = 12345;
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
  switch (dtype) {
    case 'float32':
      return Float32Array.from({ length: n }, () => (next() - 0.5) * 1e3);
    case 'float16':
    case 'bfloat16':
      // Raw bits, NaN patterns left out so that the bits round-trip through any conversion too.
      return Uint16Array.from({ length: n }, () => Math.floor(next() * 0x7c00) | (next() < 0.5 ? 0x8000 : 0));
    case 'int32':
      return Int32Array.from({ length: n }, () => Math.floor((next() - 0.5) * 2 ** 31));
    case 'uint8':
      return Uint8Array.from({ length: n }, () => Math.floor(next() * 256));
  }
}

/**
 * Bit-for-bit equality of two typed arrays of the same type. Compares bytes: vitest's toEqual walks
 * a 2^20-element typed array element by element (about 9 s each), which would time the test out.
 */
function expectSameBits(actual: kx.RawData, expected: kx.RawData): void {
  expect(actual.constructor).toBe(expected.constructor);
  expect(actual.length).toBe(expected.length);
  const bytes = (x: kx.RawData) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  expect(bytes(actual).equals(bytes(expected))).toBe(true);
}

describe('CUDA runtime: everywhere', () => {
  it('memory() reports the CUDA allocator counters as numbers', () => {
    const m = kx.memory().cuda;
    for (const key of ['allocated', 'cached', 'peak', 'mallocCalls', 'cacheHits'] as const) {
      expect(typeof m[key]).toBe('number');
      expect(m[key]).toBeGreaterThanOrEqual(0);
    }
    expect(m.peak).toBeGreaterThanOrEqual(m.allocated);
  });

  it('synchronize() and releaseCache() answer on any machine', () => {
    expect(() => kx.cuda.synchronize()).not.toThrow();
    expect(kx.cuda.releaseCache()).toBeGreaterThanOrEqual(0);
    expect(kx.memory().cuda.cached).toBe(0);
  });

  it.runIf(!gpu)('without a GPU: a stated reason, and E_NO_CUDA for CUDA tensors', () => {
    const reason = kx.cuda.unavailableReason();
    console.info(`CUDA runtime GPU tests skipped: ${reason}`);
    expect(reason.length).toBeGreaterThan(10);
    expect(reason).toMatch(/cuda|driver|device|gpu/i);
    const memoryBefore = kx.memory().cuda;
    expectCode(() => kx.tensor([1, 2], [2], { device: 'cuda' }), 'E_NO_CUDA');
    expectCode(() => kx.zeros([2], { device: 'cuda:0' }), 'E_NO_CUDA');
    const t = kx.tensor([1, 2], [2]);
    expectCode(() => t.to('cuda'), 'E_NO_CUDA');
    t.dispose();
    // The native layer checks again, with the same code, for calls that skip the TS checks (the
    // addon throws plain Errors with a code, which the TS layer rethrows as KexueErrors).
    expect(() => native.zeros([2], 'float32', 'cuda')).toThrow(expect.objectContaining({ code: 'E_NO_CUDA' }));
    expect(() => native.fromData(new Float32Array(2), [2], 'float32', 'cuda:0')).toThrow(expect.objectContaining({ code: 'E_NO_CUDA' }));
    expect(kx.memory().cuda).toEqual(memoryBefore);
  });

  it('a malformed device name is E_ARG, natively too', () => {
    expectCode(() => kx.tensor([1], [1], { device: 'gpu' }), 'E_ARG');
    expect(() => native.zeros([1], 'float32', 'cuda:x')).toThrow(expect.objectContaining({ code: 'E_ARG' }));
  });
});

describe.skipIf(!gpu)('CUDA runtime: on the GPU', () => {
  it('round-trips every dtype, bit for bit, through cuda and back (empty, scalar, large)', () => {
    for (const dtype of kx.DTYPES) {
      for (const shape of [[0], [], [3, 5], [1 << 20]]) {
        const n = shape.reduce((a, b) => a * b, 1);
        const data = sample(dtype, n);
        const host = kx.tensor(data, shape, { dtype });
        const dev = host.to('cuda');
        expect(dev.device).toBe('cuda:0');
        expect(dev.shape).toEqual(shape);
        expect(dev.dtype).toBe(dtype);
        expectSameBits(dev.dataSync(), data);
        const back = dev.to('cpu');
        expectSameBits(back.dataSync(), data);
        const direct = kx.tensor(data, shape, { dtype, device: 'cuda' });
        expectSameBits(direct.dataSync(), data);
        const copy = direct.to('cuda:0');
        expectSameBits(copy.dataSync(), data);
        kx.dispose([host, dev, back, direct, copy]);
      }
    }
  });

  it('uploads are staged: the source may change as soon as an upload returns, and queued work sees the old values', () => {
    // one source array rewritten after each upload, more uploads than the staging ring has slots,
    // each queued behind work that reads the tensor before it
    const src = new Float32Array(1000);
    const made: kx.Tensor[] = [];
    for (let i = 0; i < 40; i++) {
      src.fill(i);
      const t = kx.tensor(src, [1000], { device: 'cuda' });
      made.push(t, kx.mul(t, 2));
    }
    src.fill(-1);
    for (let i = 0; i < 40; i++) {
      expect(made[2 * i]!.toFloat32Array().every((v) => v === i), `upload ${i}`).toBe(true);
      expect(made[2 * i + 1]!.toFloat32Array().every((v) => v === 2 * i), `product ${i}`).toBe(true);
    }
    // one upload larger than the whole ring streams through its slots in turn
    const big = sample('float32', 3 << 20) as Float32Array;
    const want = big.slice();
    const t = kx.tensor(big, [big.length], { device: 'cuda' });
    big.fill(0);
    expectSameBits(t.dataSync(), want);
    kx.dispose([made, t]);
  });

  it('full and zeros are made on the device, every dtype', () => {
    for (const dtype of kx.DTYPES) {
      for (const v of kx.isFloating(dtype) ? [0, -0, 1 / 3, NaN] : [0, 7]) {
        const d = kx.full([3, 1000], v, { dtype, device: 'cuda' });
        const h = kx.full([3, 1000], v, { dtype });
        expect(d.device).toBe('cuda:0');
        expectSameBits(d.dataSync(), h.dataSync());
        kx.dispose([d, h]);
      }
    }
  });

  it('data() resolves with the device data; zeros are made on the device', async () => {
    const x = kx.tensor(new Float32Array([1, -2, 3.5]), [3], { device: 'cuda' });
    expect(await x.data()).toEqual(new Float32Array([1, -2, 3.5]));
    const z = native.zeros([1000], 'bfloat16', 'cuda');
    expect(z.device).toBe('cuda:0');
    expect(native.toData(z.handle)).toEqual(new Uint16Array(1000));
    native.dispose(z.handle);
    x.dispose();
  });

  it('counts allocated and cached bytes; disposing returns a block to the cache', () => {
    kx.cuda.releaseCache();
    const before = kx.memory();
    const t = native.zeros([1000, 1000], 'float32', 'cuda');
    const during = kx.memory();
    expect(during.cudaBytes - before.cudaBytes).toBe(4e6);
    // blocks are requests rounded up to a size class: at most a quarter more
    expect(during.cuda.allocated - before.cuda.allocated).toBeGreaterThanOrEqual(4e6);
    expect(during.cuda.allocated - before.cuda.allocated).toBeLessThanOrEqual(5e6);
    expect(during.cuda.peak).toBeGreaterThanOrEqual(during.cuda.allocated);
    expect(during.cuda.mallocCalls).toBe(before.cuda.mallocCalls + 1);
    native.dispose(t.handle);
    const after = kx.memory();
    expect(after.cuda.allocated).toBe(before.cuda.allocated);
    expect(after.cuda.cached - before.cuda.cached).toBe(during.cuda.allocated - before.cuda.allocated);
    expect(after.cudaBytes).toBe(before.cudaBytes);
    const released = kx.cuda.releaseCache();
    expect(released).toBeGreaterThanOrEqual(4e6);
    expect(kx.memory().cuda.cached).toBe(0);
  });

  it('a loop of equal steps calls cudaMalloc only in its first step', () => {
    const shapes = [[256, 1024], [7], [3, 333], [64, 64, 2], []];
    const step = () =>
      kx.tidy(() => {
        const ts = shapes.map((s, i) => kx.tensor(new Float32Array(s.reduce((a, b) => a * b, 1)).fill(i), s, { device: 'cuda' }));
        const moved = ts.map((t) => t.to('cuda'));
        return moved.map((t) => t.dataSync()[0] ?? 0).reduce((a, b) => a + b, 0);
      });
    step();
    const warm = kx.memory().cuda;
    for (let i = 0; i < 20; i++) step();
    const end = kx.memory().cuda;
    expect(end.mallocCalls).toBe(warm.mallocCalls);
    expect(end.cacheHits - warm.cacheHits).toBe(20 * 2 * shapes.length);
    expect(end.allocated).toBe(warm.allocated);
  });

  it('an impossible allocation is E_OOM with the sizes, and the device stays usable', () => {
    const bytes = 2 ** 40 * 4; // 4 TiB of float32
    const err = messageOf(() => native.zeros([2 ** 40], 'float32', 'cuda'));
    expect(() => native.zeros([2 ** 40], 'float32', 'cuda')).toThrow(expect.objectContaining({ code: 'E_OOM' }));
    expect(err).toMatch(new RegExp(`CUDA out of memory allocating ${bytes} bytes on cuda:0 \\(\\d+ free of \\d+; kexue holds \\d+ allocated \\+ \\d+ cached\\)`));
    expect(kx.memory().cuda.cached).toBe(0); // the cache was released before the retry
    const x = kx.tensor([1, 2, 3], [3], { device: 'cuda' });
    expect(x.dataSync()).toEqual(new Float32Array([1, 2, 3]));
    x.dispose();
    expect(() => kx.cuda.synchronize()).not.toThrow();
  });

  it('a device index past the last GPU is E_DEVICE, in TS and natively', () => {
    const count = kx.cuda.deviceCount();
    expectCode(() => kx.tensor([1], [1], { device: `cuda:${count}` }), 'E_DEVICE');
    expect(() => native.zeros([1], 'float32', `cuda:${count}`)).toThrow(expect.objectContaining({ code: 'E_DEVICE' }));
    expect(messageOf(() => native.zeros([1], 'float32', `cuda:${count + 7}`))).toMatch(/no CUDA device \d+ \(\d+ present\)/);
  });

  it('ops on a CUDA and a CPU tensor are E_DEVICE', () => {
    const a = kx.tensor([1, 2], [2]);
    const b = a.to('cuda');
    expect(() => native.run('add', [a.handle, b.handle], {})).toThrow(expect.objectContaining({ code: 'E_DEVICE' }));
    kx.dispose([a, b]);
  });
});
