/**
 * The bert4keras side of the T5 PEGASUS tokenizer (ALGORITHMS.md §4.2), with spans kept:
 * `lowercase_and_normalize` (lowercase the text, NFD, drop Mn) and the basic tokenization that
 * bert4keras' `Tokenizer._tokenize(word, pre_tokenize=False)` applies to a jieba word that is not
 * in the vocabulary.
 */
import { Chars } from './pieces.js';
import {
  F_B4K_CONTROL, F_B4K_SPACE, F_MN, F_PLAIN, F_PUNCT, F_PY_WHITESPACE, charFlags, codePointAt, isCjkB4K,
} from './unicode.js';

/**
 * Python's `unicodedata.normalize('NFD', text.lower())` without Mn, as characters with their
 * spans in `text`. The lowercasing is the whole string's (so a final sigma becomes 'ς', as in
 * Python); NFD is applied per original character (canonical reordering of combining marks that
 * belong to different original characters is not done; once Mn marks are dropped this only
 * matters for spacing marks, which Chinese and Latin text do not have).
 */
export function normalizeB4K(text: string): Chars {
  const chars = new Chars();
  const lowered = text.toLowerCase();
  // Only the final-sigma rule depends on context, and it keeps lengths: per-character lowercase
  // lengths therefore give the alignment of `lowered`; fall back to per character otherwise.
  let aligned = true;
  let total = 0;
  for (let i = 0; i < text.length; ) {
    const cp = codePointAt(text, i);
    const len = cp >= 0x10000 ? 2 : 1;
    total += charFlags(cp) & F_PLAIN ? len : text.slice(i, i + len).toLowerCase().length;
    i += len;
  }
  if (total !== lowered.length) aligned = false;
  let j = 0; // position in `lowered`
  for (let i = 0; i < text.length; ) {
    const cp = codePointAt(text, i);
    const len = cp >= 0x10000 ? 2 : 1;
    const start = i;
    i += len;
    const f = charFlags(cp);
    if (f & F_PLAIN) {
      chars.push(cp, start, i);
      j += len;
      continue;
    }
    const own = text.slice(start, i).toLowerCase();
    if (f & F_MN) {
      j += own.length;
      continue;
    }
    const low = aligned ? lowered.slice(j, j + own.length) : own;
    j += own.length;
    for (const c of low.normalize('NFD')) {
      const cp2 = c.codePointAt(0)!;
      if (!(charFlags(cp2) & F_MN)) chars.push(cp2, start, i);
    }
  }
  return chars;
}

/**
 * bert4keras basic tokenization of src[from, to): punctuation and CJK characters are words of
 * their own; ' ', \t, \n, \r and Zs separate words; U+0000, U+FFFD, Cc and Cf are dropped; then
 * words are split on Python's whitespace (str.split()). Kept characters are appended to `out`,
 * word ranges into `out` to `words` (flat pairs).
 */
export function b4kBasic(src: Chars, from: number, to: number, out: Chars, words: number[]): void {
  let wordStart = out.length;
  const endWord = (): void => {
    if (out.length > wordStart) words.push(wordStart, out.length);
    wordStart = out.length;
  };
  for (let k = from; k < to; k++) {
    const cp = src.cps[k]!;
    const f = charFlags(cp);
    if (f & F_PUNCT || isCjkB4K(cp)) {
      endWord();
      out.push(cp, src.starts[k]!, src.ends[k]!);
      endWord();
    } else if (f & F_B4K_SPACE) {
      endWord();
    } else if (cp === 0 || cp === 0xfffd || f & F_B4K_CONTROL) {
      continue;
    } else if (f & F_PY_WHITESPACE) {
      endWord();
    } else {
      out.push(cp, src.starts[k]!, src.ends[k]!);
    }
  }
  endWord();
}
