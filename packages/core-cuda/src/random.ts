/**
 * Philox-4x32-10 (Salmon et al. 2011, Random123's constants) in plain 32-bit arithmetic: the
 * counter-based generator of the native random ops (native/include/kx/philox.h), here for host
 * work that needs no tensors (data shuffling) and as the reference the dropout tests check. A stream is (seed, c2, c3): word w of the stream is word w % 4 of the block
 * philox([w / 4 as 64 bits, c2, c3], key = seed as 64 bits).
 */
import { ArgumentError } from './errors.js';

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two uint32. */
function mulhi(a: number, b: number): number {
  const aL = a & 0xffff;
  const aH = a >>> 16;
  const bL = b & 0xffff;
  const bH = b >>> 16;
  const lh = aL * bH;
  const hl = aH * bL;
  const mid = ((aL * bL) >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (aH * bH + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) >>> 0;
}

/** One Philox-4x32-10 block: four uint32 words for a counter (4 words) and a key (2 words). */
export function philox4x32(counter: readonly number[], key: readonly number[]): [number, number, number, number] {
  let c0 = counter[0]! >>> 0;
  let c1 = counter[1]! >>> 0;
  let c2 = counter[2]! >>> 0;
  let c3 = counter[3]! >>> 0;
  let k0 = key[0]! >>> 0;
  let k1 = key[1]! >>> 0;
  for (let r = 0; r < 10; r++) {
    if (r > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const hi0 = mulhi(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
  }
  return [c0, c1, c2, c3];
}

function u32(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0 || value > 0xffffffff) {
    throw new ArgumentError(`${what} must be an integer in [0, 2^32), got ${String(value)}`);
  }
  return value;
}

/** A sequential reader of one Philox stream: uint32 words and unbiased integers below a bound. */
export class PhiloxStream {
  readonly #key: [number, number];
  readonly #c2: number;
  readonly #c3: number;
  #block = 0;
  #words: number[] = [];
  #next = 4;

  /**
   * `seed` is an integer in [0, 2^53); c2 and c3 (uint32) select the stream; the first word read is
   * word `start` (default 0: random element `start` of the native ops' convention when c2 = c3 = 0).
   */
  constructor(seed: number, c2: number, c3: number, start = 0) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new ArgumentError(`Philox: seed must be an integer in [0, 2^53), got ${String(seed)}`);
    if (!Number.isSafeInteger(start) || start < 0) throw new ArgumentError(`Philox: start must be an integer in [0, 2^53), got ${String(start)}`);
    this.#key = [seed % 2 ** 32, Math.floor(seed / 2 ** 32)];
    this.#c2 = u32(c2, 'Philox: c2');
    this.#c3 = u32(c3, 'Philox: c3');
    this.#block = Math.floor(start / 4);
    if (start % 4 !== 0) {
      this.nextUint32();
      this.#next = start % 4;
    }
  }

  /** The next uint32 word. */
  nextUint32(): number {
    if (this.#next === 4) {
      this.#words = philox4x32([this.#block % 2 ** 32, Math.floor(this.#block / 2 ** 32), this.#c2, this.#c3], this.#key);
      this.#block++;
      this.#next = 0;
    }
    return this.#words[this.#next++]!;
  }

  /** A uniform integer in [0, bound), bound in [1, 2^32], by rejection (no modulo bias). */
  nextBelow(bound: number): number {
    const limit = 2 ** 32 - (2 ** 32 % bound);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % bound;
    }
  }
}
