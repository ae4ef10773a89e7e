/**
 * The BERT WordPiece tokenizer, token for token the same as Hugging Face's fast `BertTokenizer`
 * (BertNormalizer + BertPreTokenizer + WordPiece, the special tokens matched whole in the raw
 * text first).
 */
import { ArgumentError } from '@kexue/core-cuda';
import { WordPieceTokenizerBase } from './base.js';
import { bertBasic, type BertNormalizeOptions } from './bert_basic.js';
import { Chars, Pieces } from './pieces.js';
import { Vocab } from './vocab.js';
import { wordPiece } from './wordpiece.js';

export interface BertTokenizerOptions {
  /**
   * Lowercase the text (default true). Google's Chinese BERT vocabulary has no upper-case
   * entries, so cased Latin words would all be [UNK] without it; note that Hugging Face's
   * `bert-base-chinese` tokenizer_config says `do_lower_case: false`, so pass `lowercase: false`
   * to reproduce that checkpoint's HF tokenization exactly.
   */
  lowercase?: boolean;
  /** Strip accents (NFD, drop Mn). Default: the value of `lowercase`, as in HF. */
  stripAccents?: boolean;
  /** Longer words (in code points) become one [UNK] (default 100). */
  maxInputCharsPerWord?: number;
}

const OPTION_KEYS = new Set(['lowercase', 'stripAccents', 'maxInputCharsPerWord']);
/** Special tokens kept whole when they appear in a text (those the vocabulary has). */
const SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];

function resolveBertOptions(options: unknown): BertNormalizeOptions & { maxChars: number } {
  if (options === undefined) return { lowercase: true, stripAccents: true, maxChars: 100 };
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new ArgumentError('BertTokenizer options must be an object');
  }
  const o = options as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!OPTION_KEYS.has(k)) throw new ArgumentError(`unknown BertTokenizer option '${k}' (known: ${[...OPTION_KEYS].join(', ')})`);
  }
  for (const k of ['lowercase', 'stripAccents']) {
    if (o[k] !== undefined && typeof o[k] !== 'boolean') throw new ArgumentError(`${k} must be a boolean, got ${String(o[k])}`);
  }
  const max = o.maxInputCharsPerWord;
  if (max !== undefined && (!Number.isInteger(max) || (max as number) < 1)) {
    throw new ArgumentError(`maxInputCharsPerWord must be a positive integer, got ${String(max)}`);
  }
  const lowercase = (o.lowercase as boolean | undefined) ?? true;
  return { lowercase, stripAccents: (o.stripAccents as boolean | undefined) ?? lowercase, maxChars: (max as number | undefined) ?? 100 };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class BertTokenizer extends WordPieceTokenizerBase {
  readonly lowercase: boolean;
  readonly stripAccents: boolean;
  readonly maxInputCharsPerWord: number;
  private readonly specialRe: RegExp | null;

  constructor(vocab: Vocab, options?: BertTokenizerOptions) {
    super(vocab);
    const o = resolveBertOptions(options);
    this.lowercase = o.lowercase;
    this.stripAccents = o.stripAccents;
    this.maxInputCharsPerWord = o.maxChars;
    const specials = SPECIAL_TOKENS.filter((t) => vocab.ids.has(t));
    this.specialRe = specials.length ? new RegExp(specials.map(escapeRegExp).join('|'), 'g') : null;
  }

  /** Loads `vocab.txt`: E_IO if it cannot be read, E_FORMAT if malformed, E_ARG for bad options. */
  static fromVocab(path: string, options?: BertTokenizerOptions): BertTokenizer {
    if (typeof path !== 'string' || path.length === 0) throw new ArgumentError('fromVocab needs the path of a vocab.txt');
    resolveBertOptions(options);
    return new BertTokenizer(Vocab.fromFile(path), options);
  }

  protected pieces(text: string): Pieces {
    const chars = new Chars();
    const words: number[] = [];
    const out = new Pieces();
    const opts = { lowercase: this.lowercase, stripAccents: this.stripAccents };
    const plain = (from: number, to: number): void => {
      if (from >= to) return;
      words.length = 0;
      bertBasic(text, from, to, opts, chars, words);
      for (let w = 0; w < words.length; w += 2) wordPiece(this.vocab, chars, words[w]!, words[w + 1]!, 'hf', this.maxInputCharsPerWord, out);
    };
    let last = 0;
    if (this.specialRe) {
      this.specialRe.lastIndex = 0;
      for (let m = this.specialRe.exec(text); m !== null; m = this.specialRe.exec(text)) {
        plain(last, m.index);
        out.push(this.vocab.ids.get(m[0])!, m[0], m.index, m.index + m[0].length);
        last = m.index + m[0].length;
      }
    }
    plain(last, text.length);
    return out;
  }
}
