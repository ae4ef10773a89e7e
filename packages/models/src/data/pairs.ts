/**
 * Sentence-pair TSV (ATEC, BQ, LCQMC, PAWSX, STS-B): `sentence_a\tsentence_b\tlabel` a line.
 * Labels are integers in [0, maxLabel]: 0/1 for the paraphrase sets, 0..5 for STS-B.
 */
import { ArgumentError } from '@kexue/core-cuda';

import { Malformed } from './errors.js';
import { perLine, RecordStream, type ReadOptions } from './stream.js';
import { splitColumns } from './tsv.js';

export interface SentencePair {
  a: string;
  b: string;
  label: number;
  /** 1-based line of the pair in its file. */
  line: number;
}

export interface PairReadOptions extends ReadOptions {
  /** The largest label (labels are integers 0..maxLabel); default 1. Use 5 for STS-B. */
  maxLabel?: number;
}

/** The label range of each sentence-pair set in the data folder. */
export const PAIR_MAX_LABEL: Readonly<Record<'ATEC' | 'BQ' | 'LCQMC' | 'PAWSX' | 'STS-B', number>> = {
  ATEC: 1,
  BQ: 1,
  LCQMC: 1,
  PAWSX: 1,
  'STS-B': 5,
};

const COLUMNS = ['sentence_a', 'sentence_b', 'label'] as const;

/** Streams a sentence-pair TSV file. Blank lines are ignored. */
export function readSentencePairs(file: string, options: PairReadOptions = {}): RecordStream<SentencePair> {
  const maxLabel = options.maxLabel ?? 1;
  if (!Number.isSafeInteger(maxLabel) || maxLabel < 1) {
    throw new ArgumentError(`readSentencePairs: maxLabel must be a positive integer, got ${String(maxLabel)}`);
  }
  const parse = (text: string, no: number): SentencePair => {
    const [a, b, raw] = splitColumns(text, no, COLUMNS) as [string, string, string];
    const label = /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
    if (!(label <= maxLabel)) throw new Malformed(no, `label "${raw}" is not an integer in [0, ${maxLabel}]`);
    return { a, b, label, line: no };
  };
  return new RecordStream(file, () => perLine(parse), options);
}
