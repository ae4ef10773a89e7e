/** Cosine similarity of paired rows, as BERT-whitening scores a pair (ALGORITHMS.md §3.1). */
import { ShapeError, type Tensor } from '@kexue/core-cuda';

/**
 * cos(a_i, b_i) for each row i of a and b [N, d], in float64 from the rows' float32 values; each
 * norm is clipped at ≥ 1e-8 (the reference's L2 normalisation), so a zero row scores 0.
 */
export function cosinePairs(a: Tensor, b: Tensor): Float64Array {
  if (a.rank !== 2 || b.rank !== 2 || a.shape[0] !== b.shape[0] || a.shape[1] !== b.shape[1]) {
    throw new ShapeError(`cosinePairs: a and b must be [N, d] of one shape, got ${a.describe()} and ${b.describe()}`);
  }
  const [n, d] = a.shape as [number, number];
  const x = a.toFloat32Array();
  const y = b.toFloat32Array();
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let xy = 0;
    let xx = 0;
    let yy = 0;
    for (let j = i * d; j < (i + 1) * d; j++) {
      xy += x[j]! * y[j]!;
      xx += x[j]! * x[j]!;
      yy += y[j]! * y[j]!;
    }
    out[i] = xy / (Math.max(Math.sqrt(xx), 1e-8) * Math.max(Math.sqrt(yy), 1e-8));
  }
  return out;
}
