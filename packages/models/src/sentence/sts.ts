/**
 * The unsupervised STS evaluation of BERT-whitening (ALGORITHMS.md §3.2–3.5): for each of ATEC,
 * BQ, LCQMC, PAWSX and STS-B, both sentences of every pair are encoded, scored by cosine and
 * compared with the gold labels by Spearman's rho, three ways: raw vectors, whitened keeping every
 * direction (up to the rank of Σ_β), and whitened keeping k. The whitening of a set is fitted on
 * both sides of every pair of all its splits (§3.2: train, valid and test; labels unused), and
 * the scores are those of its test split, else its valid split (the data folder has no test
 * splits; §3.4 leaves open which split the blog's tables report).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { ArgumentError, KexueIOError, concat, dispose, type Tensor } from '@kexue/core-cuda';

import { PAIR_MAX_LABEL, readSentencePairs, type SentencePair } from '../data/pairs.js';
import { cosinePairs } from './cosine.js';
import type { SentenceEncoder } from './encoder.js';
import { spearman } from './spearman.js';
import { Whitening } from './whitening.js';

/** The data sets, in the order of §3.5's table. */
export const STS_SETS = ['ATEC', 'BQ', 'LCQMC', 'PAWSX', 'STS-B'] as const;
export type StsSet = (typeof STS_SETS)[number];

const SPLITS = ['train', 'valid', 'test'] as const;

/** ../shared/data/sts beside the repository checkout (where CI and the data README put it). */
export const DEFAULT_STS_DATA = fileURLToPath(new URL('../../../../../shared/data/sts', import.meta.url));

/** Tokens per sentence by set (§3.2: 64, PAWSX 128). */
const MAX_LENGTH: Record<StsSet, number> = { ATEC: 64, BQ: 64, LCQMC: 64, PAWSX: 128, 'STS-B': 64 };

/** WH-EVAL's "appropriate reduction" (§3.2): 384 for large, 256 for base, 128 for tiny/small; half the dimension below 256. */
export function defaultK(dimension: number): number {
  if (dimension >= 1024) return 384;
  if (dimension >= 768) return 256;
  if (dimension >= 256) return 128;
  return Math.max(1, Math.floor(dimension / 2));
}

export interface StsOptions {
  /** The folder holding ATEC/, BQ/, … with <SET>.<split>.data files; default DEFAULT_STS_DATA. */
  dataDir?: string;
  /** Default every set. */
  sets?: readonly StsSet[];
  /** β and γ of both whitened columns (default 1 and 1: the original BERT-whitening). */
  beta?: number;
  gamma?: number;
  /**
   * Dimensions of the last column. Given, a k above a set's rank of Σ_β is E_ARG (Whitening.fit);
   * absent, defaultK(D), lowered to the rank where a set's fit has fewer directions (`warn` says so).
   */
  k?: number;
  /** Pairs read from each split (the first ones): quick runs. Default all. */
  limit?: number;
  warn?: (message: string) => void;
}

/** One row of the table: a data set. Spearman's rho in [−1, 1]. */
export interface StsRow {
  set: StsSet;
  /** The split scored. */
  split: string;
  pairs: number;
  /** Sentences the whitening was fitted on (both sides of every pair of every split). */
  fitted: number;
  /** The numerical rank of Σ_β of those vectors (Whitening). */
  rank: number;
  /** Dimensions of the full whitened column (D, or the rank when lower) and of the last one. */
  kFull: number;
  k: number;
  raw: number;
  whitened: number;
  whitenedK: number;
}

export interface StsResult {
  pooling: string;
  beta: number;
  gamma: number;
  dimension: number;
  rows: StsRow[];
  /** The plain mean of each column over the sets. */
  average: { raw: number; whitened: number; whitenedK: number };
}

/** The pairs of a split file, the first `limit` of them. */
async function readPairs(file: string, set: StsSet, limit: number): Promise<SentencePair[]> {
  const pairs: SentencePair[] = [];
  if (limit === 0) return pairs;
  for await (const p of readSentencePairs(file, { maxLabel: PAIR_MAX_LABEL[set] })) {
    pairs.push(p);
    if (pairs.length >= limit) break;
  }
  return pairs;
}

/** Spearman's rho of the cosines of paired rows against the labels. */
function score(a: Tensor, b: Tensor, labels: readonly number[]): number {
  return spearman(cosinePairs(a, b), labels);
}

/** Spearman's rho of the pairs after a whitening. */
function whitenedScore(w: Whitening, a: Tensor, b: Tensor, labels: readonly number[]): number {
  const [wa, wb] = [w.apply(a), w.apply(b)];
  try {
    return score(wa, wb, labels);
  } finally {
    dispose([wa, wb]);
  }
}

const fitted = (sides: readonly Tensor[]) => sides.reduce((n, t) => n + t.shape[0]!, 0);

/** Evaluates one set: its splits encoded, the whitening fitted, the scored split's three columns. */
async function evaluateSet(encoder: SentenceEncoder, dataDir: string, set: StsSet, o: Required<Pick<StsOptions, 'beta' | 'gamma'>> & StsOptions): Promise<StsRow> {
  const files = SPLITS.map((split) => ({ split, file: path.join(dataDir, set, `${set}.${split}.data`) })).filter((s) => existsSync(s.file));
  const scored = files.find((s) => s.split === 'test') ?? files.find((s) => s.split === 'valid') ?? files[0];
  if (!scored) throw new KexueIOError(`${path.join(dataDir, set)} holds no ${set}.{train,valid,test}.data`);
  const maxLength = MAX_LENGTH[set];
  const sides: Tensor[] = [];
  try {
    let a: Tensor | null = null;
    let b: Tensor | null = null;
    let labels: number[] = [];
    for (const { split, file } of files) {
      const pairs = await readPairs(file, set, o.limit ?? Infinity);
      if (pairs.length === 0) continue;
      const va = encoder.encode(pairs.map((p) => p.a), { maxLength });
      sides.push(va);
      const vb = encoder.encode(pairs.map((p) => p.b), { maxLength });
      sides.push(vb);
      if (split === scored.split) [a, b, labels] = [va, vb, pairs.map((p) => p.label)];
    }
    if (!a || !b || labels.length < 2) throw new KexueIOError(`${scored.file} holds fewer than 2 pairs`);
    const all = concat(sides, 0);
    // the full transform (k = the rank); its first k columns are the transform keeping k
    let full: Whitening;
    try {
      full = Whitening.fit(all, { beta: o.beta, gamma: o.gamma, pooling: encoder.pooling });
    } finally {
      all.dispose();
    }
    try {
      const D = encoder.dimension;
      if (full.k < D) o.warn?.(`${set}: Σ_β of ${fitted(sides)} vectors has rank ${full.rank} < ${D}: the whitened column keeps ${full.k} dimensions`);
      let k = o.k;
      if (k === undefined) {
        k = Math.min(defaultK(D), full.rank);
        if (k < defaultK(D)) o.warn?.(`${set}: k lowered from ${defaultK(D)} to the rank ${full.rank} of Σ_β`);
      } else if (k > full.rank) {
        throw new ArgumentError(`${set}: k = ${k} exceeds the numerical rank ${full.rank} of Σ_β (β = ${o.beta}) of ${fitted(sides)} vectors of dimension ${D}: use k <= ${full.rank} or fit on more pairs`);
      }
      const cut = full.truncate(k);
      try {
        return {
          set,
          split: scored.split,
          pairs: labels.length,
          fitted: fitted(sides),
          rank: full.rank,
          kFull: full.k,
          k,
          raw: score(a, b, labels),
          whitened: whitenedScore(full, a, b, labels),
          whitenedK: whitenedScore(cut, a, b, labels),
        };
      } finally {
        cut.dispose();
      }
    } finally {
      full.dispose();
    }
  } finally {
    dispose(sides);
  }
}

/** Runs the evaluation of the module comment with an encoder (its pooling is the table's). */
export async function evaluateSts(encoder: SentenceEncoder, options: StsOptions = {}): Promise<StsResult> {
  const dataDir = options.dataDir ?? DEFAULT_STS_DATA;
  if (!existsSync(dataDir)) throw new KexueIOError(`STS data folder ${dataDir} does not exist (give the folder holding ${STS_SETS.join('/, ')}/)`);
  const o = { ...options, beta: options.beta ?? 1, gamma: options.gamma ?? 1 };
  const rows: StsRow[] = [];
  for (const set of options.sets ?? STS_SETS) rows.push(await evaluateSet(encoder, dataDir, set, o));
  const mean = (f: (r: StsRow) => number) => rows.reduce((s, r) => s + f(r), 0) / rows.length;
  return {
    pooling: encoder.pooling,
    beta: o.beta,
    gamma: o.gamma,
    dimension: encoder.dimension,
    rows,
    average: { raw: mean((r) => r.raw), whitened: mean((r) => r.whitened), whitenedK: mean((r) => r.whitenedK) },
  };
}

/** The table of §3.5 (Spearman × 100), one row per set and their average, as Markdown. */
export function formatStsTable(r: StsResult): string {
  const pct = (x: number) => (x * 100).toFixed(2);
  const ks = [...new Set(r.rows.map((row) => row.k))];
  const header = ['data', 'split', 'pairs', 'raw', 'whitened', `whitened k=${ks.join('/')}`];
  const body = r.rows.map((row) => [row.set, row.split, String(row.pairs), pct(row.raw), pct(row.whitened), pct(row.whitenedK)]);
  body.push(['average', '', '', pct(r.average.raw), pct(r.average.whitened), pct(r.average.whitenedK)]);
  const widths = header.map((h, c) => Math.max(h.length, ...body.map((row) => row[c]!.length)));
  const line = (cells: string[]) => `| ${cells.map((x, c) => (c < 3 ? x.padEnd(widths[c]!) : x.padStart(widths[c]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, c) => (c < 3 ? `${'-'.repeat(w + 2)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [`Spearman × 100 (${r.pooling}, β = ${r.beta}, γ = ${r.gamma}, D = ${r.dimension})`, line(header), rule, ...body.map(line)].join('\n') + '\n';
}
