import v8 from 'node:v8';
import vm from 'node:vm';

import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { native } from '../src/native.js';
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

describe('the safety net and handles', () => {
  it('frees a tensor dropped without dispose once V8 collects it, and only one no scope owns', async () => {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    // collects until the count of native allocations settles (earlier tests may have left garbage)
    const settle = async () => {
      let last = -1;
      for (let i = 0; i < 50 && kx.memory().storages !== last; i++) {
        last = kx.memory().storages;
        gc();
        await new Promise((resolve) => setTimeout(resolve, 5)); // finalizers run as tasks after a collection
      }
    };
    await settle();
    const before = kx.memory();
    const loose = () => {
      for (let i = 0; i < 10; i++) kx.zeros([1000]); // made outside any scope, never disposed
    };
    loose();
    const owned: kx.Tensor[] = [];
    kx.tidy(() => {
      owned.push(kx.zeros([1000])); // a scope's own: freed by the scope, not by the safety net
    });
    expect(owned[0]!.isDisposed).toBe(true);
    expect(kx.memory().storages).toBe(before.storages + 10);
    expect(kx.memory().tensors).toBe(before.tensors + 10);
    await settle();
    expect(kx.memory().storages).toBe(before.storages);
    expect(kx.memory().tensors).toBe(before.tensors);
    // V8's count is the process's (other buffers, typed arrays read back by earlier tests, come and
    // go by a few kB as V8 collects them); the ten took 40,000, so half that tells they were returned
    expect(Math.abs(kx.memory().v8ExternalBytes - before.v8ExternalBytes)).toBeLessThan(20000);
  });

  it('a handle used after dispose is E_DISPOSED, also once its slot holds another tensor', () => {
    const a = kx.tensor([1, 2, 3]);
    const stale = a.handle;
    a.dispose();
    const b = kx.tensor([4, 5, 6]); // may reuse a's slot
    const disposed = expect.objectContaining({ code: 'E_DISPOSED' });
    expect(() => native.toData(stale)).toThrow(disposed);
    expect(() => native.run('add', [stale, b.handle], {})).toThrow(disposed);
    native.dispose(stale); // a second dispose of a stale handle leaves the new tensor alone
    expect(Array.from(b.dataSync())).toEqual([4, 5, 6]);
    b.dispose();
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
