/**
 * Character classes the tokenizers need, per code point, in the two flavours the project matches:
 * Hugging Face's `BertNormalizer`/`BertPreTokenizer` (Rust `tokenizers`) and bert4keras' `Tokenizer`
 * (the T5 PEGASUS reference). Classes come from the Unicode tables of Node's ICU through regular
 * expressions, computed once per BMP code point and cached in a table.
 */

/** HF control: Cc, Cf, Cn, Co (and lone surrogates, Cs), except \t \n \r. Dropped by clean_text. */
export const F_CONTROL = 1;
/** HF whitespace: \t \n \r or Unicode White_Space. Folded to a word boundary. */
export const F_WHITESPACE = 2;
/** Punctuation: ASCII punctuation or Unicode P*. The same set for HF and bert4keras. */
export const F_PUNCT = 4;
/** Nonspacing mark (Mn), dropped when accents are stripped. */
export const F_MN = 8;
/** bert4keras control: Cc or Cf. */
export const F_B4K_CONTROL = 16;
/** bert4keras space: ' ', \n, \r, \t or Zs. */
export const F_B4K_SPACE = 32;
/** Python's str.split() whitespace: Zs, \t \n \v \f \r, \x1c-\x1f, \x85, U+2028, U+2029. */
export const F_PY_WHITESPACE = 64;
/** Not Mn, and NFD and per-character lowercasing both leave the code point as it is (the fast path). */
export const F_PLAIN = 128;
const F_DONE = 0x8000;

const reControl = /^[\p{Cc}\p{Cf}\p{Cn}\p{Co}\p{Cs}]$/u;
const reB4kControl = /^[\p{Cc}\p{Cf}]$/u;
const reWhite = /^\s$/u;
const rePunct = /^\p{P}$/u;
const reMn = /^\p{Mn}$/u;
const reZs = /^\p{Zs}$/u;

function classify(cp: number): number {
  const ch = cp >= 0xd800 && cp <= 0xdfff ? String.fromCharCode(cp) : String.fromCodePoint(cp);
  let f = 0;
  const tnr = cp === 9 || cp === 10 || cp === 13;
  if (!tnr && reControl.test(ch)) f |= F_CONTROL;
  if (tnr || (reWhite.test(ch) && cp !== 0xfeff)) f |= F_WHITESPACE;
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126) || rePunct.test(ch)) {
    f |= F_PUNCT;
  }
  if (reMn.test(ch)) f |= F_MN;
  if (reB4kControl.test(ch)) f |= F_B4K_CONTROL;
  const zs = reZs.test(ch);
  if (zs || cp === 32 || tnr) f |= F_B4K_SPACE;
  if (zs || (cp >= 9 && cp <= 13) || (cp >= 0x1c && cp <= 0x1f) || cp === 0x85 || cp === 0x2028 || cp === 0x2029) {
    f |= F_PY_WHITESPACE;
  }
  const plain = !(f & F_MN) && !(cp >= 0xd800 && cp <= 0xdfff) && ch.normalize('NFD') === ch && ch.toLowerCase() === ch;
  if (plain) f |= F_PLAIN;
  return f;
}

const bmp = new Uint16Array(0x10000);
const astral = new Map<number, number>();

/** The class bits (F_*) of a code point (a lone surrogate is its own code unit). */
export function charFlags(cp: number): number {
  if (cp < 0x10000) {
    const f = bmp[cp]!;
    if (f & F_DONE) return f;
    const g = classify(cp) | F_DONE;
    bmp[cp] = g;
    return g;
  }
  let f = astral.get(cp);
  if (f === undefined) {
    f = classify(cp) | F_DONE;
    astral.set(cp, f);
  }
  return f;
}

// The CJK blocks both definitions share; they differ only in where the block after Extension D
// starts (extStart).
function isCjkFrom(cp: number, extStart: number): boolean {
  if (cp < 0x3400) return false;
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= extStart && cp <= 0x2ceaf) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

/** CJK ideographs as HF's Rust BertNormalizer spaces them out (its range 0x2B920..0x2CEAF included). */
export function isCjkHF(cp: number): boolean {
  return isCjkFrom(cp, 0x2b920);
}

/** CJK ideographs as Google's BERT and bert4keras define them (0x2B820..0x2CEAF). */
export function isCjkB4K(cp: number): boolean {
  return isCjkFrom(cp, 0x2b820);
}

/** The code point at UTF-16 index i of s (a lone surrogate as itself) and its length in code units. */
export function codePointAt(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
    const d = s.charCodeAt(i + 1);
    if (d >= 0xdc00 && d <= 0xdfff) return ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
  }
  return c;
}

/** A string of code points (lone surrogates kept as code units). */
export function fromCodePoints(cps: ArrayLike<number>, start = 0, end = cps.length): string {
  let out = '';
  for (let i = start; i < end; i++) {
    const cp = cps[i]!;
    out += cp < 0x10000 ? String.fromCharCode(cp) : String.fromCodePoint(cp);
  }
  return out;
}
