/**
 * The T5 PEGASUS tokenizer (ALGORITHMS.md §4.2), the bert4keras path the released model was
 * trained with: lowercase + NFD without Mn; jieba precise mode without HMM; a jieba word that is
 * in the vocabulary is one token, any other word goes through bert4keras' basic tokenization and
 * WordPiece (a character that cannot be matched is its own [UNK] piece; a word of more than 200
 * characters is kept whole). Special tokens in the text are not kept whole (bert4keras does not).
 */
import { createRequire } from 'node:module';
import { ArgumentError, KexueError } from '@kexue/core-cuda';
import { WordPieceTokenizerBase } from './base.js';
import { b4kBasic, normalizeB4K } from './b4k_basic.js';
import { Chars, Pieces } from './pieces.js';
import { fromCodePoints } from './unicode.js';
import { Vocab } from './vocab.js';
import { wordPiece } from './wordpiece.js';

/** What the tokenizer needs of a jieba segmenter: precise mode, HMM on or off. */
export interface Segmenter {
  cut(sentence: string, hmm?: boolean): string[];
}

let defaultJieba: Segmenter | undefined;

/**
 * The shared `@node-rs/jieba` segmenter with jieba's own dictionary (the one bundled with
 * @node-rs/jieba: Python jieba 0.42.1's dict.txt less its one entry with an upper-case letter,
 * "B超", which lowercased text never meets). Loaded on first use (about 0.3 s).
 */
export function defaultSegmenter(): Segmenter {
  if (!defaultJieba) {
    const require = createRequire(import.meta.url);
    const { Jieba } = require('@node-rs/jieba') as { Jieba: { withDict(d: Uint8Array): Segmenter } };
    const { dict } = require('@node-rs/jieba/dict') as { dict: Uint8Array };
    defaultJieba = Jieba.withDict(dict);
  }
  return defaultJieba;
}

export interface T5PegasusTokenizerOptions {
  /** Words longer than this (in code points) are kept whole (default 200, bert4keras' word_maxlen). */
  wordMaxLength?: number;
  /** The jieba segmenter (default: `defaultSegmenter()`). */
  segmenter?: Segmenter;
}

const OPTION_KEYS = new Set(['wordMaxLength', 'segmenter']);

function checkOptions(options: unknown): { wordMaxLength: number; segmenter: Segmenter | undefined } {
  if (options === undefined) return { wordMaxLength: 200, segmenter: undefined };
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new ArgumentError('T5PegasusTokenizer options must be an object');
  }
  const o = options as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!OPTION_KEYS.has(k)) throw new ArgumentError(`unknown T5PegasusTokenizer option '${k}' (known: ${[...OPTION_KEYS].join(', ')})`);
  }
  const max = o.wordMaxLength;
  if (max !== undefined && (!Number.isInteger(max) || (max as number) < 1)) {
    throw new ArgumentError(`wordMaxLength must be a positive integer, got ${String(max)}`);
  }
  const seg = o.segmenter;
  if (seg !== undefined && (seg === null || typeof (seg as Segmenter).cut !== 'function')) {
    throw new ArgumentError('segmenter must have a cut(sentence, hmm) method');
  }
  return { wordMaxLength: (max as number | undefined) ?? 200, segmenter: seg as Segmenter | undefined };
}

export class T5PegasusTokenizer extends WordPieceTokenizerBase {
  readonly wordMaxLength: number;
  private readonly segmenter: Segmenter | undefined;

  constructor(vocab: Vocab, options?: T5PegasusTokenizerOptions) {
    super(vocab);
    const o = checkOptions(options);
    this.wordMaxLength = o.wordMaxLength;
    this.segmenter = o.segmenter;
  }

  /** Loads `vocab.txt`: E_IO if it cannot be read, E_FORMAT if malformed, E_ARG for bad options. */
  static fromVocab(path: string, options?: T5PegasusTokenizerOptions): T5PegasusTokenizer {
    if (typeof path !== 'string' || path.length === 0) throw new ArgumentError('fromVocab needs the path of a vocab.txt');
    checkOptions(options);
    return new T5PegasusTokenizer(Vocab.fromFile(path), options);
  }

  /** jieba's words (precise mode, no HMM) of the normalized (lowercased, accent-stripped) text. */
  segment(text: string): string[] {
    if (typeof text !== 'string') throw new ArgumentError('text must be a string');
    return (this.segmenter ?? defaultSegmenter()).cut(fromCodePoints(normalizeB4K(text).cps), false);
  }

  protected pieces(text: string): Pieces {
    const chars = normalizeB4K(text);
    const normalized = fromCodePoints(chars.cps);
    const words = (this.segmenter ?? defaultSegmenter()).cut(normalized, false);
    const out = new Pieces();
    const sub = new Chars();
    const subWords: number[] = [];
    let k = 0; // index into chars
    let unit = 0; // UTF-16 position in `normalized`
    for (const w of words) {
      // Walk the word by UTF-16 length: jieba returns U+FFFD (one unit) for a lone surrogate.
      const from = k;
      const u0 = unit;
      while (unit - u0 < w.length && k < chars.length) unit += chars.cps[k++]! >= 0x10000 ? 2 : 1;
      if (k === from) continue;
      const word = normalized.slice(u0, unit);
      const id = this.vocab.ids.get(word);
      if (id !== undefined) {
        out.push(id, word, chars.starts[from]!, chars.ends[k - 1]!);
        continue;
      }
      sub.cps.length = sub.starts.length = sub.ends.length = 0;
      subWords.length = 0;
      b4kBasic(chars, from, k, sub, subWords);
      for (let i = 0; i < subWords.length; i += 2) wordPiece(this.vocab, sub, subWords[i]!, subWords[i + 1]!, 'b4k', this.wordMaxLength, out);
    }
    if (k !== chars.length) {
      throw new KexueError('E_INTERNAL', `jieba's words cover ${k} of ${chars.length} characters of the text`);
    }
    return out;
  }
}
