/**
 * Character spans ↔ token spans, from a tokenizer's per-token offsets: `[start, end)` of each token
 * in the text (string indices), `[0, 0]` (any empty span) for special tokens such as [CLS]/[SEP].
 * Characters that no token covers (spaces, control characters the tokenizer drops) simply belong
 * to no token.
 *
 * - char → token: the tokens that overlap [start, end) at all, as [first, last] inclusive; none
 *   (undefined) when the span covers only dropped characters. A token that straddles a span
 *   boundary (a multi-character token partly inside) is included.
 * - token → char: [start of first, end of last) over the non-special tokens of [first, last].
 * So char → token → char gives the span widened to token boundaries and trimmed of dropped
 * characters at its edges, and token → char → token is the identity on non-special tokens.
 */
import { ArgumentError } from '@kexue/core-cuda';

import type { Entity } from './entities.js';

/** A token's character span [start, end) in the text. */
export type TokenOffset = readonly [number, number];

export interface SpanMapperOptions {
  /**
   * Only tokens [from, to) take part (default all): for an encoded pair, the tokens of one
   * segment, whose offsets refer to that segment's text. Indices stay those of the whole encoding.
   */
  tokens?: readonly [number, number];
}

/** An entity as token indices: [first, last] inclusive. */
export interface TokenEntity {
  type: string;
  first: number;
  last: number;
}

/** The first k in [0, n) where a monotone (false…true) predicate holds; n when none. */
function lowerBound(n: number, pred: (k: number) => boolean): number {
  // first k in [0, n) with pred(k) true, for a predicate monotone false→true; n when none.
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (pred(mid)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Maps spans between characters and tokens for one encoded text. */
export class TokenSpanMapper {
  readonly length: number;
  readonly #idx: Int32Array; // token index of each non-special token
  readonly #starts: Int32Array;
  readonly #ends: Int32Array;
  readonly #n: number;

  /**
   * `offsets[i]` is token i's [start, end). Non-special tokens must come in text order: their
   * starts and their ends each non-decreasing (E_ARG otherwise).
   */
  constructor(offsets: ReadonlyArray<TokenOffset>, options: SpanMapperOptions = {}) {
    if (!Array.isArray(offsets)) throw new ArgumentError('TokenSpanMapper: offsets must be an array of [start, end]');
    const [from, to] = options.tokens ?? [0, offsets.length];
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to > offsets.length || from > to) {
      throw new ArgumentError(`TokenSpanMapper: tokens range [${from}, ${to}) is not inside [0, ${offsets.length}]`);
    }
    this.length = offsets.length;
    const idx: number[] = [];
    const starts: number[] = [];
    const ends: number[] = [];
    for (let i = from; i < to; i++) {
      const o = offsets[i];
      if (!Array.isArray(o) || o.length !== 2 || !Number.isSafeInteger(o[0]) || !Number.isSafeInteger(o[1]) || o[0] < 0 || o[1] < o[0]) {
        throw new ArgumentError(`TokenSpanMapper: offsets[${i}] = ${JSON.stringify(o)} is not [start, end] with 0 <= start <= end`);
      }
      if (o[1] === o[0]) continue; // special token
      const k = idx.length;
      if (k > 0 && (o[0] < starts[k - 1]! || o[1] < ends[k - 1]!)) {
        throw new ArgumentError(`TokenSpanMapper: offsets[${i}] = [${o[0]}, ${o[1]}] goes back before the previous token [${starts[k - 1]}, ${ends[k - 1]}]`);
      }
      idx.push(i);
      starts.push(o[0]);
      ends.push(o[1]);
    }
    this.#idx = Int32Array.from(idx);
    this.#starts = Int32Array.from(starts);
    this.#ends = Int32Array.from(ends);
    this.#n = idx.length;
  }

  /** Tokens overlapping the characters [start, end) as [first, last], or undefined when none does. */
  toTokens(start: number, end: number): [number, number] | undefined {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end <= start) {
      throw new ArgumentError(`TokenSpanMapper.toTokens: [${start}, ${end}) is not a non-empty character span`);
    }
    const ends = this.#ends;
    const starts = this.#starts;
    const first = lowerBound(this.#n, (k) => ends[k]! > start);
    const last = lowerBound(this.#n, (k) => starts[k]! >= end) - 1;
    if (first >= this.#n || last < 0 || first > last) return undefined;
    return [this.#idx[first]!, this.#idx[last]!];
  }

  /** Characters [start, end) covered by tokens first..last (inclusive), or undefined when all are special. */
  toChars(first: number, last: number): [number, number] | undefined {
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last) || first < 0 || last < first || last >= this.length) {
      throw new ArgumentError(`TokenSpanMapper.toChars: [${first}, ${last}] is not a token span inside [0, ${this.length})`);
    }
    const idx = this.#idx;
    const a = lowerBound(this.#n, (k) => idx[k]! >= first);
    const b = lowerBound(this.#n, (k) => idx[k]! > last) - 1;
    if (a > b) return undefined;
    return [this.#starts[a]!, this.#ends[b]!];
  }
}

/**
 * Maps entities to token spans. Entities that cover no token (only dropped characters, or text cut
 * off by truncation) are returned in `dropped`.
 */
export function entitiesToTokens(entities: readonly Entity[], mapper: TokenSpanMapper): { spans: TokenEntity[]; dropped: Entity[] } {
  const spans: TokenEntity[] = [];
  const dropped: Entity[] = [];
  for (const e of entities) {
    const t = mapper.toTokens(e.start, e.end);
    if (t) spans.push({ type: e.type, first: t[0], last: t[1] });
    else dropped.push(e);
  }
  return { spans, dropped };
}

/** Maps token-span entities (e.g. decoded predictions) back to character entities of `text`. */
export function tokensToEntities(spans: readonly TokenEntity[], mapper: TokenSpanMapper, text: string): Entity[] {
  const out: Entity[] = [];
  for (const s of spans) {
    const c = mapper.toChars(s.first, s.last);
    if (c) out.push({ type: s.type, start: c[0], end: c[1], text: text.slice(c[0], c[1]) });
  }
  return out;
}
