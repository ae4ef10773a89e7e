/**
 * From pieces to model inputs: special tokens, pairs (segment ids), truncation and padding, with
 * the same rules as Hugging Face's fast tokenizers.
 */
import { ArgumentError } from '@kexue/core-cuda';
import { Pieces } from './pieces.js';
import type { Vocab } from './vocab.js';

/** A [start, end) span in UTF-16 code units of the input text; [0, 0] for special tokens and padding. */
export type Offset = [number, number];

/** What `encode` returns: one entry per token in every array. */
export interface Encoding {
  ids: number[];
  tokens: string[];
  /** 0 for [CLS], the first text and its [SEP]; 1 for the second text and its [SEP]; 0 for padding. */
  segmentIds: number[];
  /** Each token's span in its own input text (the pair's tokens index the pair text). */
  offsets: Offset[];
  /** 1 for real tokens, 0 for padding. */
  attentionMask: number[];
}

/**
 * How to shorten inputs longer than `maxLength` (special tokens included):
 * - 'longest_first': take tokens off the longer text (HF's rule: the shorter keeps its length if
 *   it fits in half, otherwise both get half, the first one the smaller half);
 * - 'only_first' / 'only_second': shorten only that text (E_ARG when that is not enough).
 * Tokens always go from the right end of a text.
 */
export type TruncationStrategy = 'longest_first' | 'only_first' | 'only_second';

export interface EncodeOptions {
  /** A second text: [CLS] text [SEP] pair [SEP], segment ids 0 then 1. */
  pair?: string;
  /** The length to truncate to (with truncation) and to pad to (with padding). */
  maxLength?: number;
  /** Default: 'longest_first' when maxLength is given; true is 'longest_first'; false never truncates. */
  truncation?: boolean | TruncationStrategy;
  /** true or 'max_length': pad with [PAD] on the right up to maxLength (which is then required). */
  padding?: boolean | 'max_length';
  /** Add [CLS]/[SEP] (default true). */
  addSpecialTokens?: boolean;
}

export interface EncodeBatchOptions extends Omit<EncodeOptions, 'pair' | 'padding'> {
  /** 'longest' pads every encoding to the longest one of the batch; true or 'max_length' to maxLength. */
  padding?: boolean | 'max_length' | 'longest';
}

const ENCODE_KEYS = new Set(['pair', 'maxLength', 'truncation', 'padding', 'addSpecialTokens']);
const BATCH_KEYS = new Set(['maxLength', 'truncation', 'padding', 'addSpecialTokens']);

export interface ResolvedOptions {
  maxLength: number | undefined;
  truncation: TruncationStrategy | null;
  padding: 'max_length' | 'longest' | null;
  addSpecialTokens: boolean;
}

/** Checks encode options (E_ARG for an unknown key or a bad value) and fills in the defaults. */
export function resolveOptions(options: unknown, batch: boolean): ResolvedOptions {
  if (options === undefined) return { maxLength: undefined, truncation: null, padding: null, addSpecialTokens: true };
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new ArgumentError(`encode options must be an object, got ${options === null ? 'null' : typeof options}`);
  }
  const o = options as Record<string, unknown>;
  const keys = batch ? BATCH_KEYS : ENCODE_KEYS;
  for (const k of Object.keys(o)) {
    if (!keys.has(k)) throw new ArgumentError(`unknown encode option '${k}' (known: ${[...keys].join(', ')})`);
  }
  const { maxLength, truncation, padding, addSpecialTokens } = o;
  if (maxLength !== undefined && (!Number.isInteger(maxLength) || (maxLength as number) < 1)) {
    throw new ArgumentError(`maxLength must be a positive integer, got ${String(maxLength)}`);
  }
  if (addSpecialTokens !== undefined && typeof addSpecialTokens !== 'boolean') {
    throw new ArgumentError(`addSpecialTokens must be a boolean, got ${String(addSpecialTokens)}`);
  }
  let trunc: TruncationStrategy | null;
  if (truncation === undefined) trunc = maxLength === undefined ? null : 'longest_first';
  else if (truncation === true) trunc = 'longest_first';
  else if (truncation === false) trunc = null;
  else if (truncation === 'longest_first' || truncation === 'only_first' || truncation === 'only_second') trunc = truncation;
  else throw new ArgumentError(`truncation must be a boolean, 'longest_first', 'only_first' or 'only_second', got ${String(truncation)}`);
  if (trunc !== null && maxLength === undefined) throw new ArgumentError('truncation needs maxLength');
  let pad: 'max_length' | 'longest' | null;
  if (padding === undefined || padding === false) pad = null;
  else if (padding === true || padding === 'max_length') pad = 'max_length';
  else if (padding === 'longest' && batch) pad = 'longest';
  else throw new ArgumentError(`padding must be a boolean or 'max_length'${batch ? " or 'longest'" : ''}, got ${String(padding)}`);
  if (pad === 'max_length' && maxLength === undefined) throw new ArgumentError("padding to 'max_length' needs maxLength");
  return { maxLength: maxLength as number | undefined, truncation: trunc, padding: pad, addSpecialTokens: addSpecialTokens !== false };
}

/** HF's (Rust) longest_first split of `budget` tokens between texts of n1 and n2 tokens. */
function longestFirst(n1: number, n2: number, budget: number): [number, number] {
  if (n1 + n2 <= budget) return [n1, n2];
  const swap = n1 > n2;
  let a = swap ? n2 : n1;
  let b: number;
  if (a > budget) b = a;
  else b = Math.max(a, budget - a);
  if (a + b > budget) {
    a = Math.floor(budget / 2);
    b = a + (budget % 2);
  }
  return swap ? [b, a] : [a, b];
}

/** How many tokens of each text to keep. */
function keptLengths(n1: number, n2: number | null, budget: number, strategy: TruncationStrategy | null): [number, number] {
  const m = n2 ?? 0;
  if (strategy === null || n1 + m <= budget) return [n1, m];
  if (n2 === null) return [budget, 0];
  if (strategy === 'longest_first') return longestFirst(n1, n2, budget);
  if (strategy === 'only_first') {
    if (n2 >= budget) throw new ArgumentError(`cannot truncate only the first text: the second alone has ${n2} tokens, ${budget} fit`);
    return [budget - n2, n2];
  }
  if (n1 >= budget) throw new ArgumentError(`cannot truncate only the second text: the first alone has ${n1} tokens, ${budget} fit`);
  return [n1, budget - n1];
}

/** Builds the encoding of one text (and its pair): specials, truncation, padding to maxLength. */
export function buildEncoding(vocab: Vocab, a: Pieces, b: Pieces | null, opts: ResolvedOptions): Encoding {
  const specials = opts.addSpecialTokens ? (b ? 3 : 2) : 0;
  let budget = Infinity;
  if (opts.truncation !== null) {
    budget = opts.maxLength! - specials;
    if (budget < 0) throw new ArgumentError(`maxLength ${opts.maxLength} is shorter than the ${specials} special tokens`);
  }
  const [k1, k2] = keptLengths(a.length, b ? b.length : null, budget, opts.truncation);
  const enc: Encoding = { ids: [], tokens: [], segmentIds: [], offsets: [], attentionMask: [] };
  const special = (id: number, segment: number): void => {
    enc.ids.push(id);
    enc.tokens.push(vocab.tokens[id]!);
    enc.segmentIds.push(segment);
    enc.offsets.push([0, 0]);
    enc.attentionMask.push(1);
  };
  const text = (p: Pieces, keep: number, segment: number): void => {
    for (let i = 0; i < keep; i++) {
      enc.ids.push(p.ids[i]!);
      enc.tokens.push(p.tokens[i]!);
      enc.segmentIds.push(segment);
      enc.offsets.push([p.starts[i]!, p.ends[i]!]);
      enc.attentionMask.push(1);
    }
  };
  if (opts.addSpecialTokens) special(vocab.clsId, 0);
  text(a, k1, 0);
  if (opts.addSpecialTokens) special(vocab.sepId, 0);
  if (b) {
    text(b, k2, 1);
    if (opts.addSpecialTokens) special(vocab.sepId, 1);
  }
  if (opts.padding === 'max_length') padEncoding(vocab, enc, opts.maxLength!);
  return enc;
}

/** Pads an encoding with [PAD] (segment 0, offset [0, 0], mask 0) on the right up to `length`. */
export function padEncoding(vocab: Vocab, enc: Encoding, length: number): void {
  while (enc.ids.length < length) {
    enc.ids.push(vocab.padId);
    enc.tokens.push(vocab.tokens[vocab.padId]!);
    enc.segmentIds.push(0);
    enc.offsets.push([0, 0]);
    enc.attentionMask.push(0);
  }
}
