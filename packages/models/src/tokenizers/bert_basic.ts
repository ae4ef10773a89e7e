/**
 * BERT basic tokenization exactly as Hugging Face's `BertNormalizer` followed by
 * `BertPreTokenizer` (the Rust `tokenizers` crate), with every normalized character keeping the
 * span of the original character it came from:
 *  1. clean_text: drop U+0000, U+FFFD and controls (Cc, Cf, Cn, Co; not \t \n \r); whitespace
 *     becomes a word boundary;
 *  2. handle_chinese_chars: every CJK ideograph is a word of its own;
 *  3. strip_accents (default: when lowercasing): NFD, then drop nonspacing marks (Mn);
 *  4. lowercase: per character (Rust's `char::to_lowercase`, so no final-sigma rule);
 *  5. pre-tokenize the result: split on whitespace, and every punctuation character (ASCII
 *     punctuation or Unicode P*) is a word of its own.
 */
import { Chars } from './pieces.js';
import { F_CONTROL, F_MN, F_PLAIN, F_PUNCT, F_WHITESPACE, charFlags, codePointAt, isCjkHF } from './unicode.js';

export interface BertNormalizeOptions {
  lowercase: boolean;
  stripAccents: boolean;
}

/**
 * Tokenizes text[from, to) into words: their characters are appended to `chars` and each word's
 * [first, end) index range into `chars` to `words` (flat pairs). Spans are indices into `text`.
 */
export function bertBasic(text: string, from: number, to: number, opts: BertNormalizeOptions, chars: Chars, words: number[]): void {
  let wordStart = chars.length;
  const endWord = (): void => {
    if (chars.length > wordStart) words.push(wordStart, chars.length);
    wordStart = chars.length;
  };
  // One normalized code point: whitespace ends the word, punctuation is a word of its own.
  const emit = (cp: number, flags: number, start: number, end: number): void => {
    if (flags & F_WHITESPACE) {
      endWord();
    } else if (flags & F_PUNCT) {
      endWord();
      chars.push(cp, start, end);
      endWord();
    } else {
      chars.push(cp, start, end);
    }
  };
  const transform = opts.lowercase || opts.stripAccents;
  for (let i = from; i < to; ) {
    const cp = codePointAt(text, i);
    const len = cp >= 0x10000 ? 2 : 1;
    const start = i;
    i += len;
    const f = charFlags(cp);
    if (cp === 0 || cp === 0xfffd || f & F_CONTROL) continue;
    if (f & F_WHITESPACE) {
      endWord();
      continue;
    }
    const cjk = isCjkHF(cp);
    if (cjk) endWord();
    if (!transform || f & F_PLAIN) {
      emit(cp, f, start, i);
    } else {
      let s = text.slice(start, i);
      if (opts.stripAccents) {
        let kept = '';
        for (const c of s.normalize('NFD')) if (!(charFlags(c.codePointAt(0)!) & F_MN)) kept += c;
        s = kept;
      }
      if (opts.lowercase) {
        let lower = '';
        for (const c of s) lower += c.toLowerCase();
        s = lower;
      }
      for (const c of s) {
        const cp2 = c.codePointAt(0)!;
        emit(cp2, charFlags(cp2), start, i);
      }
    }
    if (cjk) endWord();
  }
  endWord();
}
