import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { randomTensor } from './helpers.js';

describe('memory under a training loop', () => {
  it('10,000 forward+backward steps inside tidy keep live tensors and bytes flat', () => {
    const x = randomTensor([4, 8], 1);
    let w = kx.keep(randomTensor([8, 4], 2));
    const sample = (): { tensors: number; bytes: number } => ({ tensors: kx.memory().tensors, bytes: kx.memory().bytes });
    let after100 = sample();
    for (let step = 0; step < 10_000; step++) {
      const next = kx.tidy(() => {
        const { grads } = kx.valueAndGrad(([p]) => kx.mean(kx.tanh(kx.matmul(x, p!))), [w]);
        return kx.sub(w, kx.mul(grads[0]!, 0.1));
      });
      w.dispose();
      w = kx.keep(next);
      if (step === 99) after100 = sample();
    }
    expect(sample()).toEqual(after100);
    kx.dispose([x, w]);
  });
});

describe('what V8 is told about native memory', () => {
  // 16 MiB a tensor; other activity moves V8's external count by far less.
  const MiB = 2 ** 20;
  const big = () => kx.tidy(() => kx.broadcastTo(kx.scalar(0), [4 * MiB]));
  const external = () => kx.memory().v8ExternalBytes;
  const grew = (before: number) => (external() - before) / MiB;

  it('counts tensors no tidy scope will free, and not those a scope owns', () => {
    const base = external();
    const loose = big();
    expect(grew(base)).toBeGreaterThan(15);
    loose.dispose();
    expect(Math.abs(grew(base))).toBeLessThan(1);

    let inside = NaN;
    const kept: kx.Tensor[] = [];
    const returned = kx.tidy(() => {
      const owned = big();
      const nested = kx.tidy(() => big()); // returned into this scope: still owned
      inside = grew(base);
      kept.push(kx.keep(big())); // kept: no scope frees it
      kx.dispose([owned, nested]);
      return big(); // leaves the outermost scope
    });
    expect(inside).toBeLessThan(1);
    expect(grew(base)).toBeGreaterThan(31);
    kx.dispose([returned, ...kept]);
    expect(Math.abs(grew(base))).toBeLessThan(1);
  });
});

describe('the host cache', () => {
  it('keeps freed large blocks for reuse, within its limit, and gives them back on request', () => {
    kx.releaseHostCache();
    const base = kx.memory();
    expect(base.hostCachedBytes).toBe(0);
    const big = kx.zeros([1 << 20]); // 4 MiB: cached on free
    big.dispose();
    const cached = kx.memory().hostCachedBytes;
    expect(cached).toBeGreaterThanOrEqual(4 << 20);
    expect(kx.memory().bytes).toBe(base.bytes); // cached blocks are not live tensor memory
    const again = kx.zeros([1 << 20]); // served from the cache
    expect(kx.memory().hostCachedBytes).toBeLessThan(cached);
    expect(Array.from(again.toFloat32Array().subarray(0, 4))).toEqual([0, 0, 0, 0]); // reused memory is still zero-filled by zeros()
    again.dispose();
    const previous = kx.setHostCacheLimit(1 << 20); // below one block: trims the cache
    expect(kx.memory().hostCachedBytes).toBeLessThanOrEqual(1 << 20);
    const small = kx.zeros([1 << 20]);
    small.dispose();
    expect(kx.memory().hostCachedBytes).toBeLessThanOrEqual(1 << 20);
    kx.setHostCacheLimit(previous);
    expect(kx.releaseHostCache()).toBeGreaterThanOrEqual(0);
    expect(kx.memory().hostCachedBytes).toBe(0);
    expect(() => kx.setHostCacheLimit(-1)).toThrow(kx.ArgumentError);
  });
});
