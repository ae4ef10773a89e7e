/**
 * Decoding GlobalPointer logits into entities (ALGORITHMS.md §2.6, GP-REPO's
 * NamedEntityRecognizer.recognize): for one unpadded text of n tokens ([CLS] … [SEP]), every span
 * (type, i, j) with score > threshold, [CLS] (0) and [SEP] (n−1) excluded; overlapping and nested
 * spans are all kept. Token spans map to characters through the tokenizer's per-token offsets
 * [start, end) (string indices, empty for [CLS]/[SEP]): the entity runs from the start of token i
 * to the end of token j, `end` exclusive like the dataset readers' Entity. A token without
 * characters cannot start or end an entity: such spans are skipped (bert4keras crashes on them).
 */
import { ArgumentError, ShapeError, type Tensor } from '@kexue/core-cuda';

import { TokenSpanMapper } from '../data/spans.js';

/** A span of tokens: type index, first and last token (inclusive), and its score. */
export interface TokenSpan {
  /** Batch index (0 for a single text). */
  batch: number;
  type: number;
  start: number;
  end: number;
  score: number;
}

/** An entity over characters: [start, end) in string indices, its type, its score. */
export interface DecodedEntity {
  start: number;
  end: number;
  type: string;
  score: number;
}

export interface DecodeOptions {
  /** Default 0. */
  threshold?: number;
  /**
   * The real length (tokens, [CLS] and [SEP] included) of each text of the batch; spans at
   * position 0 and length−1 are excluded, and nothing beyond. Default: the full width.
   */
  lengths?: number[];
}

/** Every span above the threshold in logits [B, heads, n, n] (or [heads, n, n] for one text). */
export function decodeSpans(logits: Tensor, options: DecodeOptions = {}): TokenSpan[] {
  const shape = logits.rank === 3 ? [1, ...logits.shape] : [...logits.shape];
  if (shape.length !== 4 || shape[2] !== shape[3]) throw new ShapeError(`decodeSpans: logits must be [B, heads, n, n], got ${logits.describe()}`);
  const [B, H, n] = shape as [number, number, number, number];
  const threshold = options.threshold ?? 0;
  if (typeof threshold !== 'number' || Number.isNaN(threshold)) throw new ArgumentError(`decodeSpans: threshold must be a number, got ${String(threshold)}`);
  const lengths = options.lengths ?? new Array<number>(B).fill(n);
  if (lengths.length !== B || lengths.some((l) => !Number.isInteger(l) || l < 0 || l > n)) {
    throw new ArgumentError(`decodeSpans: lengths must be ${B} integers in [0, ${n}], got [${lengths.join(', ')}]`);
  }
  const s = logits.toFloat32Array();
  const out: TokenSpan[] = [];
  for (let b = 0; b < B; b++) {
    const last = lengths[b]! - 1; // the [SEP] index of this text
    for (let h = 0; h < H; h++) {
      const base = (b * H + h) * n * n;
      for (let i = 1; i < last; i++) {
        for (let j = i; j < last; j++) {
          const v = s[base + i * n + j]!;
          if (v > threshold) out.push({ batch: b, type: h, start: i, end: j, score: v });
        }
      }
    }
  }
  return out;
}

/**
 * Token spans of one text to character entities. offsets[t] is token t's [start, end) in the text
 * (an empty span for special tokens); typeNames[type] names each head.
 */
export function spansToEntities(spans: TokenSpan[], offsets: readonly (readonly [number, number])[], typeNames: readonly string[]): DecodedEntity[] {
  const mapper = new TokenSpanMapper(offsets);
  const out: DecodedEntity[] = [];
  for (const sp of spans) {
    const edgeless = (t: number) => { const o = offsets[t]; return !o || o[1] <= o[0]; };
    if (edgeless(sp.start) || edgeless(sp.end)) continue;
    const type = typeNames[sp.type];
    if (type === undefined) throw new ArgumentError(`spansToEntities: no name for type ${sp.type} (${typeNames.length} names)`);
    const [start, end] = mapper.toChars(sp.start, sp.end)!;
    out.push({ start, end, type, score: sp.score });
  }
  return out;
}

/** decodeSpans + spansToEntities for one text's logits [heads, n, n] (n = its real token count). */
export function recognize(logits: Tensor, offsets: readonly (readonly [number, number])[], typeNames: readonly string[], threshold = 0): DecodedEntity[] {
  if (logits.rank !== 3) throw new ShapeError(`recognize: logits must be [heads, n, n] for one text, got ${logits.describe()}`);
  return spansToEntities(decodeSpans(logits, { threshold }), offsets, typeNames);
}
