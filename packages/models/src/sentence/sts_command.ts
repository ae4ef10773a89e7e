/**
 * `kexue eval sts MODEL`: the STS table of BERT-whitening (sts.ts) for a kexue run or a Hugging
 * Face BERT checkpoint, printed as §3.5 lays it out and written as JSON with --out.
 */
import path from 'node:path';

import { resolveDevice } from '@kexue/core-cuda';

import type { PoolingMode } from '../heads/pooling.js';
import { writeJsonAtomic } from '../train/files.js';
import { RequestError } from '../tasks/config.js';
import { RUN_DIR_OPTIONS, type EvaluationCommand } from '../tasks/task.js';
import { POOLINGS, SentenceEncoder } from './encoder.js';
import { DEFAULT_STS_DATA, STS_SETS, evaluateSts, formatStsTable } from './sts.js';

/** `beta=B,gamma=G,k=K`, any of them, in any order. */
const WHITEN = /^\s*(beta|gamma|k)\s*=\s*[^,=\s]+\s*(,\s*(beta|gamma|k)\s*=\s*[^,=\s]+\s*)*$/;

/** The β, γ and k of a --whiten value (RequestError naming a bad one). */
export function parseWhiten(text: string): { beta?: number; gamma?: number; k?: number } {
  const out: { beta?: number; gamma?: number; k?: number } = {};
  for (const part of text.split(',')) {
    const [key, raw] = part.split('=').map((s) => s.trim()) as ['beta' | 'gamma' | 'k', string];
    const value = Number(raw);
    if (key in out) throw new RequestError(`--whiten: ${key} is given twice`);
    if (raw === '' || !Number.isFinite(value)) throw new RequestError(`--whiten: ${key} must be a number, got '${raw}'`);
    if (key === 'k' && (!Number.isSafeInteger(value) || value < 1)) throw new RequestError(`--whiten: k must be a positive integer, got '${raw}'`);
    out[key] = value;
  }
  return out;
}

/** The eval-only `sts` command. */
export const stsEvaluation: EvaluationCommand = {
  name: 'sts',
  summary: 'unsupervised STS (ATEC, BQ, LCQMC, PAWSX, STS-B) of sentence vectors: raw, whitened, whitened to k dimensions',
  model: { name: 'model', description: 'a kexue run directory (mlm, ner) or a Hugging Face BERT checkpoint directory (config.json, vocab.txt, weights)', required: true },
  details: [
    "Encodes both sentences of every pair (one sentence a pass, 64 tokens, PAWSX 128), scores pairs by",
    "cosine and prints Spearman's rho × 100 against the gold labels, one row per data set: raw vectors,",
    'whitened (every direction of Σ_β up to its rank) and whitened keeping k (ALGORITHMS.md §3).',
    "Each set's whitening is fitted on both sides of all its splits; its test split is scored, else its",
    'valid split. --whiten sets β, γ and k (default beta=1,gamma=1 and k 128/256/384 by model size).',
    '',
    'Examples:',
    '  kexue eval sts runs/mlm --pooling first-last-avg --whiten beta=1,gamma=1,k=256',
    '  kexue eval sts ~/models/bert-base-chinese --whiten beta=0,gamma=0,k=256 --out sts.json',
  ],
  options: [
    { name: 'pooling', type: 'string', valueName: 'MODE', description: 'how a sentence becomes a vector (ALGORITHMS.md §3.3)', default: 'first-last-avg', choices: POOLINGS },
    { name: 'whiten', type: 'string', valueName: 'beta=B,gamma=G,k=K', description: 'the whitening: β (centring), γ (equalising), k (dimensions kept)', rule: { test: (v) => WHITEN.test(v), expected: 'beta=B,gamma=G,k=K (any of them)' } },
    { name: 'data', type: 'string', valueName: 'DIR', description: `the folder holding ${STS_SETS.join('/, ')}/ (default: ../shared/data/sts beside the repository)` },
    { name: 'limit', type: 'integer', valueName: 'N', description: 'read the first N pairs of each split only (quick runs)' },
    { name: 'out', type: 'string', valueName: 'FILE', description: 'also write the table as JSON' },
    ...RUN_DIR_OPTIONS.map((o) => ({ ...o, description: o.name === 'checkpoint' ? "a run's checkpoint: best or last" : 'where the model computes' })),
  ],
  async run(model, { options }, io) {
    const whiten = options.whiten !== undefined ? parseWhiten(options.whiten as string) : {};
    const limit = options.limit as number | undefined;
    if (limit !== undefined && limit < 2) throw new RequestError('--limit must be at least 2 (Spearman needs two pairs)');
    const dataDir = options.data !== undefined ? path.resolve(io.cwd, options.data as string) : DEFAULT_STS_DATA;
    const encoder = SentenceEncoder.open(model, {
      pooling: options.pooling as PoolingMode,
      device: resolveDevice(options.device as string),
      checkpoint: options.checkpoint as 'best' | 'last',
      warn: io.warn,
    });
    try {
      const result = await evaluateSts(encoder, { dataDir, ...whiten, ...(limit !== undefined ? { limit } : {}), warn: io.warn });
      io.write(formatStsTable(result));
      if (options.out !== undefined) {
        const round = (x: number) => Number(x.toFixed(6));
        await writeJsonAtomic(path.resolve(io.cwd, options.out as string), {
          model,
          data: dataDir,
          pooling: result.pooling,
          beta: result.beta,
          gamma: result.gamma,
          dimension: result.dimension,
          ...(limit !== undefined ? { limit } : {}),
          sets: result.rows.map((r) => ({ ...r, raw: round(r.raw), whitened: round(r.whitened), whitenedK: round(r.whitenedK) })),
          average: { raw: round(result.average.raw), whitened: round(result.average.whitened), whitenedK: round(result.average.whitenedK) },
        });
      }
    } finally {
      encoder.dispose();
    }
  },
};
