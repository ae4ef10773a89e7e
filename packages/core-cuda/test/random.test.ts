/** The TypeScript Philox-4x32-10 (src/random.ts): known answers, an independent BigInt check, streams. */
import { describe, expect, it } from 'vitest';

import { PhiloxStream, philox4x32 } from '../src/index.js';
import { expectCode } from './helpers.js';

const hex = (v: number[]) => v.map((x) => x.toString(16).padStart(8, '0')).join(' ');

// An independent Philox with BigInt products, for the arithmetic and the stream layout.
function philoxBig(counter: number[], key: number[]): number[] {
  const mask = 0xffffffffn;
  let [c0, c1, c2, c3] = counter.map(BigInt) as [bigint, bigint, bigint, bigint];
  let [k0, k1] = key.map(BigInt) as [bigint, bigint];
  for (let r = 0; r < 10; r++) {
    if (r > 0) {
      k0 = (k0 + 0x9e3779b9n) & mask;
      k1 = (k1 + 0xbb67ae85n) & mask;
    }
    const p0 = 0xd2511f53n * c0;
    const p1 = 0xcd9e8d57n * c2;
    [c0, c1, c2, c3] = [((p1 >> 32n) ^ c1 ^ k0) & mask, p1 & mask, ((p0 >> 32n) ^ c3 ^ k1) & mask, p0 & mask];
  }
  return [c0, c1, c2, c3].map(Number);
}

function mulberry32(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0);
  };
}

describe('Philox-4x32-10', () => {
  it('reproduces the Random123 known answers', () => {
    expect(hex(philox4x32([0, 0, 0, 0], [0, 0]))).toBe('6627e8d5 e169c58d bc57ac4c 9b00dbd8');
    expect(hex(philox4x32([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff]))).toBe('408f276d 41c83b0e a20bc7c6 6d5451fd');
    expect(hex(philox4x32([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]))).toBe('d16cfe09 94fdcceb 5001e420 24126ea1');
  });

  it('matches a BigInt implementation on random counters and keys', () => {
    const rnd = mulberry32(7);
    for (let i = 0; i < 2000; i++) {
      const c = [rnd(), rnd(), rnd(), rnd()];
      const k = [rnd(), rnd()];
      expect(philox4x32(c, k)).toEqual(philoxBig(c, k));
    }
  });

  it('streams word w as word w % 4 of block w / 4, keyed by the 64-bit seed', () => {
    const seed = 2 ** 40 + 12345;
    const s = new PhiloxStream(seed, 3, 0x53485546);
    const key = [seed % 2 ** 32, Math.floor(seed / 2 ** 32)];
    for (let w = 0; w < 12; w++) expect(s.nextUint32()).toBe(philoxBig([Math.floor(w / 4), 0, 3, 0x53485546], key)[w % 4]);
  });

  it('draws unbiased integers below a bound', () => {
    const s = new PhiloxStream(1, 0, 0);
    const counts = [0, 0, 0];
    for (let i = 0; i < 30000; i++) counts[s.nextBelow(3)]!++;
    for (const c of counts) expect(Math.abs(c - 10000)).toBeLessThan(400);
    expectCode(() => new PhiloxStream(-1, 0, 0), 'E_ARG');
    expectCode(() => new PhiloxStream(0, 2 ** 32, 0), 'E_ARG');
  });
});

