/**
 * T5's relative position buckets (ALGORITHMS.md §4.1) and the attention bias they index: one table
 * [buckets, heads] per stack, looked up once per forward and added to every layer's scores.
 */
import { ArgumentError, permute, reshape, tensor, tidy, type Tensor } from '@kexue/core-cuda';

import type { Embedding } from '../nn/layers.js';

/**
 * The bucket of a relative position rel = key position − query position. Bidirectional (the
 * encoder): half the buckets for keys before the query, half (offset by buckets / 2) for keys after
 * it. Unidirectional (the decoder): keys after the query all fall in bucket 0. Distances below half
 * a side's buckets get a bucket each; longer ones share logarithmically wider buckets up to
 * maxDistance, computed in float32 as transformers does, so that the boundaries agree with it.
 */
export function relativePositionBucket(rel: number, bidirectional: boolean, numBuckets: number, maxDistance: number): number {
  if (!Number.isInteger(rel)) throw new ArgumentError(`relativePositionBucket: rel must be an integer, got ${rel}`);
  let buckets = numBuckets;
  let bucket = 0;
  let n: number;
  if (bidirectional) {
    buckets /= 2;
    if (rel > 0) bucket += buckets;
    n = Math.abs(rel);
  } else {
    n = Math.max(-rel, 0);
  }
  const maxExact = buckets / 2;
  if (n < maxExact) return bucket + n;
  const f = Math.fround;
  const scaled = f(f(f(Math.log(f(n / maxExact))) / f(Math.log(maxDistance / maxExact))) * (buckets - maxExact));
  return bucket + Math.min(buckets - 1, maxExact + Math.trunc(scaled));
}

/**
 * The bias [1, heads, queries, keys] of a table [buckets, heads] for queries at positions
 * queryStart … queryStart + queries − 1 and keys at 0 … keys − 1 (queryStart: the first query's
 * position when decoding one step at a time).
 */
export function relativePositionBias(
  table: Embedding,
  queries: number,
  keys: number,
  options: { bidirectional: boolean; maxDistance: number; queryStart?: number },
): Tensor {
  const [numBuckets, heads] = table.weight.shape as [number, number];
  const start = options.queryStart ?? 0;
  const ids = new Int32Array(queries * keys);
  for (let i = 0; i < queries; i++) {
    for (let j = 0; j < keys; j++) ids[i * keys + j] = relativePositionBucket(j - (start + i), options.bidirectional, numBuckets, options.maxDistance);
  }
  return tidy(() => {
    const rows = table.forward(tensor(ids, [queries, keys], { dtype: 'int32', device: table.weight.device })); // [q, k, heads]
    return reshape(permute(rows, [2, 0, 1]), [1, heads, queries, keys]);
  });
}
