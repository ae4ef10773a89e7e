/** Deterministic inputs shared by the cases. */
import * as kx from '@kexue/core-cuda';

/** A xorshift32 stream: each call the next 32-bit word, the same on every run for a seed. */
function xorshift32(seed: number, mix: number): () => number {
  let s = (seed * mix) >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** Deterministic integers in [0, high), the same on every run. */
export function randInt(n: number, high: number, seed: number): Int32Array {
  const next = xorshift32(seed, 2246822519);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = next() % high;
  return out;
}

/** A deterministic uniform(−1, 1) float32 tensor, so both sides see similar magnitudes. */
export function rand(shape: number[], seed: number, scale = 1): kx.Tensor {
  const next = xorshift32(seed, 2654435761);
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = ((next() / 4294967296) * 2 - 1) * scale;
  return kx.tensor(data, shape);
}
