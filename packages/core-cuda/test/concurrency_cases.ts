/**
 * The op cases concurrency.test.ts runs on several threads at once: each thread makes the same
 * inputs (a fixed-seed generator, no shared state) and reports a SHA-256 of every output's bytes.
 * Imported by the test on the main thread and by concurrency_worker.mjs in worker threads, through
 * a relative path (a worker has no 'source' condition of its own).
 */
import { createHash } from 'node:crypto';

import * as kx from '../src/index.js';

/** Uniform values in [-scale, scale) from a 32-bit LCG (the same on every thread). */
function data(n: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2 * scale;
  }
  return out;
}

const t = (shape: number[], seed: number, scale = 1) => kx.tensor(data(shape.reduce((a, b) => a * b, 1), seed, scale), shape);

/**
 * name → the output of one op. Between them: a product split into parts over the pool (512³),
 * a batch of small products run in parallel on kexue's pool (sgemm inside the pool's chunks), and
 * row kernels, reductions, attention and a gradient that split their work across the pool.
 */
const CASES: Record<string, () => kx.Tensor> = {
  'matmul 512x512x512 (parts on the pool)': () => kx.matmul(t([512, 512], 1), t([512, 512], 2)),
  'matmul batch 64 x [32,48]x[48,40] (kexue pool)': () => kx.matmul(t([64, 32, 48], 3), t([64, 48, 40], 4)),
  'layerNorm [256, 768]': () => kx.layerNorm(t([256, 768], 5), t([768], 6), t([768], 7), 1e-12),
  'softmax [256, 1000]': () => kx.softmax(t([256, 1000], 8, 4)),
  'gelu [256, 1024]': () => kx.gelu(t([256, 1024], 9, 3)),
  'sum [512, 512] over rows': () => kx.sum(t([512, 512], 10), 0),
  'attention [2, 4, 128, 64]': () => kx.attention(t([2, 4, 128, 64], 11), t([2, 4, 128, 64], 12), t([2, 4, 128, 64], 13)),
  'cast to bfloat16 [1024, 256]': () => kx.cast(t([1024, 256], 14), 'bfloat16'),
  'cross-entropy gradient [256, 2000]': () => {
    const labels = kx.tensor(Int32Array.from({ length: 256 }, (_, i) => (i * 37) % 2000), [256]);
    return kx.valueAndGrad(([l]) => kx.crossEntropy(l!, labels), [t([256, 2000], 15, 4)]).grads[0]!;
  },
};

export const CASE_NAMES = Object.keys(CASES);

/** One round: each case's output digest, by name. */
export function runCases(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, make] of Object.entries(CASES)) {
    out[name] = kx.tidy(() => {
      const y = make();
      const bytes = y.dataSync();
      return createHash('sha256').update(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)).digest('hex');
    });
  }
  return out;
}

/** `rounds` rounds, with the wall-clock window they ran in (Date.now(): the same clock on every thread). */
export function runRounds(rounds: number): { digests: Record<string, string>[]; start: number; end: number } {
  const start = Date.now();
  const digests: Record<string, string>[] = [];
  for (let i = 0; i < rounds; i++) digests.push(runCases());
  return { digests, start, end: Date.now() };
}

/** The process's live native storages (worker threads' included: the counts are the process's). */
export const liveStorages = () => kx.memory().storages;
