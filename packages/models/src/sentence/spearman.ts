/**
 * Spearman's rank correlation (ALGORITHMS.md §3.4: the metric of the STS evaluation, as scipy's
 * `spearmanr`): the Pearson correlation of the two samples' ranks, tied values sharing the mean
 * of the ranks they span. Computed in float64.
 */
import { ArgumentError, ShapeError } from '@kexue/core-cuda';

/** 1-based ranks of `x`; tied values get the average of the ranks they span (scipy's 'average'). */
export function averageRanks(x: ArrayLike<number>): Float64Array {
  const n = x.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => x[i]! - x[j]! || i - j);
  const ranks = new Float64Array(n);
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && x[order[j + 1]!] === x[order[i]!]) j++;
    const rank = (i + j) / 2 + 1;
    for (let t = i; t <= j; t++) ranks[order[t]!] = rank;
    i = j + 1;
  }
  return ranks;
}

/** The Pearson correlation of two samples, in float64; NaN when either is constant (the correlation is undefined). */
export function pearson(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i]!;
    mb += b[i]!;
  }
  ma /= n;
  mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i]! - ma;
    const db = b[i]! - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  return saa === 0 || sbb === 0 ? NaN : sab / Math.sqrt(saa * sbb);
}

/**
 * Spearman's rho of two paired samples (scores against gold labels): in [−1, 1], NaN when either
 * sample is constant, as scipy's. E_SHAPE for samples of different lengths, E_ARG for fewer than
 * two pairs or a NaN.
 */
export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new ShapeError(`spearman: the samples differ in length (${a.length} and ${b.length})`);
  if (a.length < 2) throw new ArgumentError(`spearman: needs at least 2 pairs, got ${a.length}`);
  for (const [name, x] of [['a', a], ['b', b]] as const) {
    for (let i = 0; i < x.length; i++) if (Number.isNaN(x[i])) throw new ArgumentError(`spearman: ${name}[${i}] is NaN`);
  }
  return pearson(averageRanks(a), averageRanks(b));
}
