import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectClose, expectCode, expectGradOk, randomTensor, tolerance } from './helpers.js';

/** Whether random element e of (seed, offset) keeps under p: word e % 4 of block e / 4. */
function referenceKeep(seed: number, offset: number, n: number, p: number): boolean[] {
  const keep: boolean[] = [];
  const key = [seed % 2 ** 32, Math.floor(seed / 2 ** 32)];
  for (let i = 0; i < n; i++) {
    const e = offset + i;
    const block = Math.floor(e / 4);
    const words = kx.philox4x32([block % 2 ** 32, Math.floor(block / 2 ** 32), 0, 0], key);
    keep.push((words[e % 4]! >>> 8) * 2 ** -24 >= p);
  }
  return keep;
}


describe('dropout', () => {

  it('draws its mask from Philox(seed, offset + index) exactly, with a 64-bit seed', () => kx.tidy(() => {
    const seed = 2 ** 40 + 12345;
    const n = 1003;
    for (const offset of [0, 7, 2 ** 33 + 1]) {
      const y = kx.dropout(kx.ones([n]), 0.4, { seed, offset });
      const kept = Array.from(y.toFloat32Array(), (v) => v !== 0);
      expect(kept).toEqual(referenceKeep(seed, offset, n, 0.4));
      y.dispose();
    }
  }));

  it('keeps a fraction 1 − p (within 4 sigma, per Philox lane too) and scales kept values by 1/(1 − p)', () => kx.tidy(() => {
    const n = 100_000;
    const x = randomTensor([n], 1, 3);
    const xv = x.toFloat32Array();
    for (const p of [0.1, 0.5, 0.9]) {
      const y = kx.dropout(x, p, { seed: 42 }).toFloat32Array();
      const scale = Math.fround(1 / (1 - p));
      const lanes = [0, 0, 0, 0];
      let kept = 0;
      let wrong = 0;
      for (let i = 0; i < n; i++) {
        if (y[i] !== 0) {
          kept++;
          lanes[i % 4]++;
          if (y[i] !== Math.fround(xv[i]! * scale)) wrong++;
        }
      }
      expect(wrong).toBe(0);
      const sigma = Math.sqrt((p * (1 - p)) / n);
      expect(Math.abs(kept / n - (1 - p))).toBeLessThan(4 * sigma);
      for (const l of lanes) expect(Math.abs(l / (n / 4) - (1 - p))).toBeLessThan(4 * 2 * sigma);
    }
    x.dispose();
  }));

  it('is deterministic for a key; another seed or offset gives another mask; offsets shift the stream', () => kx.tidy(() => {
    const x = kx.ones([4099]);
    const mask = (t: kx.Tensor) => Array.from(t.toFloat32Array(), (v) => (v !== 0 ? 1 : 0));
    const a = mask(kx.dropout(x, 0.5, { seed: 7 }));
    const b = mask(kx.dropout(x, 0.5, { seed: 7 }));
    const c = mask(kx.dropout(x, 0.5, { seed: 8 }));
    const d = mask(kx.dropout(x, 0.5, { seed: 7, offset: 4099 }));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(a).not.toEqual(d);
    const shifted = mask(kx.dropout(kx.ones([4094]), 0.5, { seed: 7, offset: 5 }));
    expect(shifted).toEqual(a.slice(5));
    // Agreement between unrelated masks is near 1/2.
    const agree = a.filter((v, i) => v === c[i]).length / a.length;
    expect(Math.abs(agree - 0.5)).toBeLessThan(0.05);
    x.dispose();
  }));

  it('a Philox generator hands out consecutive offsets', () => kx.tidy(() => {
    const rng = new kx.Philox(99);
    const x = kx.ones([10]);
    const first = kx.dropout(x, 0.5, rng);
    expect(rng.offset).toBe(10);
    const second = kx.dropout(x, 0.5, rng);
    expect(rng.offset).toBe(20);
    const direct = kx.dropout(x, 0.5, { seed: 99, offset: 10 });
    expect(Array.from(second.toFloat32Array())).toEqual(Array.from(direct.toFloat32Array()));
    const both = kx.dropout(kx.ones([20]), 0.5, { seed: 99 }).toFloat32Array();
    expect(Array.from(first.toFloat32Array())).toEqual(Array.from(both.slice(0, 10)));
    expect(rng.take(5)).toEqual({ seed: 99, offset: 20 });
    expect(rng.offset).toBe(25);
    kx.dispose([x, first, second, direct]);
  }));

  it('p = 0 returns a new tensor with the same values', () => kx.tidy(() => {
    const x = randomTensor([33], 3);
    const y = kx.dropout(x, 0, { seed: 1 });
    expect(y).not.toBe(x);
    expect(Array.from(y.dataSync())).toEqual(Array.from(x.dataSync()));
    kx.dispose([x, y]);
  }));

  it('half dtypes use the same mask and round x / (1 − p) once', () => kx.tidy(() => {
    const x = randomTensor([1000], 4);
    const y32 = kx.dropout(x, 0.3, { seed: 5 });
    for (const dtype of ['float16', 'bfloat16'] as const) {
      const xh = kx.cast(x, dtype);
      const yh = kx.dropout(xh, 0.3, { seed: 5 });
      expect(yh.dtype).toBe(dtype);
      const ref = kx.dropout(kx.cast(xh, 'float32'), 0.3, { seed: 5 });
      expect(Array.from(yh.dataSync())).toEqual(Array.from(kx.cast(ref, dtype).dataSync()));
      expectClose(yh, y32, tolerance(dtype));
      kx.dispose([xh, yh, ref]);
    }
    kx.dispose([x, y32]);
  }));

  it('its gradient is dy through the same mask and scale', () => kx.tidy(() => {
    const x = randomTensor([2, 517], 6);
    const w = randomTensor([2, 517], 7);
    const key = { seed: 1234, offset: 3 };
    const p = 0.25;
    const [dx] = kx.grad(([t]) => kx.sum(kx.mul(kx.dropout(t!, p, key), w)), [x]);
    const y = kx.dropout(x, p, key).toFloat32Array();
    const wv = w.toFloat32Array();
    const scale = Math.fround(1 / (1 - p));
    const want = Float32Array.from(wv, (v, i) => (y[i] !== 0 ? Math.fround(v * scale) : 0));
    expect(Array.from(dx!.toFloat32Array())).toEqual(Array.from(want));
    expectGradOk((t) => kx.sum(kx.mul(kx.dropout(t, p, key), w)), [x], { eps: 1e-2, atol: 1e-3, rtol: 1e-3 });
    kx.dispose([x, w, dx!]);
  }));

  it('rejects bad p (E_ARG), bad keys (E_ARG) and integer tensors (E_DTYPE)', () => kx.tidy(() => {
    const x = randomTensor([8], 8);
    for (const p of [1, -0.1, NaN, 2]) expectCode(() => kx.dropout(x, p, { seed: 1 }), 'E_ARG');
    for (const seed of [-1, 1.5, 2 ** 53, NaN]) expectCode(() => kx.dropout(x, 0.5, { seed }), 'E_ARG');
    expectCode(() => kx.dropout(x, 0.5, { seed: 1, offset: -4 }), 'E_ARG');
    expectCode(() => kx.dropout(x, 0.5, null as unknown as kx.RandomKey), 'E_ARG');
    expectCode(() => new kx.Philox(-3), 'E_ARG');
    expectCode(() => kx.dropout(kx.tensor(new Int32Array([1, 2])), 0.5, { seed: 1 }), 'E_DTYPE');
    expectCode(() => kx.runKernel('dropout', [x], { p: 1, seed: 0 }), 'E_ARG');
    expectCode(() => kx.runKernel('dropout', [x], { p: 0.5, seed: -1 }), 'E_ARG');
    expectCode(() => kx.runKernel('dropout', [x], { p: 0.5, seed: 0, offset: 0.5 }), 'E_ARG');
    expectCode(() => kx.runKernel('dropout', [kx.tensor(new Uint8Array([1]))], { p: 0.5, seed: 0 }), 'E_DTYPE');
    x.dispose();
  }));
});
