/**
 * Tokens back to text, as bert4keras' `Tokenizer.decode` does (ALGORITHMS.md §4.2): tokens of the
 * form `[...]` are dropped, '##' pieces join the previous one, CJK characters join without
 * spaces, Latin words are space-separated, and spaces after CJK punctuation (and after
 * `+-/={(<[`) are removed.
 */
import { F_PUNCT, F_PY_WHITESPACE, charFlags, isCjkB4K } from './unicode.js';

const CJK_PUNCTUATION =
  '\uff02\uff03\uff04\uff05\uff06\uff07\uff08\uff09\uff0a\uff0b\uff0c\uff0d\uff0f\uff1a\uff1b' +
  '\uff1c\uff1d\uff1e\uff20\uff3b\uff3c\uff3d\uff3e\uff3f\uff40\uff5b\uff5c\uff5d\uff5e\uff5f' +
  '\uff60\uff62\uff63\uff64\u3000\u3001\u3003\u3008\u3009\u300a\u300b\u300c\u300d\u300e\u300f' +
  '\u3010\u3011\u3014\u3015\u3016\u3017\u3018\u3019\u301a\u301b\u301c\u301d\u301e\u301f\u3030' +
  '\u303e\u303f\u2013\u2014\u2018\u2019\u201b\u201c\u201d\u201e\u201f\u2026\u2027\ufe4f\ufe51' +
  '\ufe54\u00b7\uff01\uff1f\uff61\u3002';
const NO_SPACE_AFTER = new RegExp(`([${(CJK_PUNCTUATION + '+-/={(<[').replace(/[\\\]^-]/g, '\\$&')}]) `, 'gu');
const CONTRACTION = /' (re|m|s|t|ve|d|ll) /g;
const DECIMAL = /(\p{Nd}\.) (\p{Nd})/gu;

/** The only code point of `s`, or -1 when s has zero or several. */
function singleCodePoint(s: string): number {
  const cp = s.codePointAt(0);
  if (cp === undefined) return -1;
  return s.length === (cp >= 0x10000 ? 2 : 1) ? cp : -1;
}

function isSpecial(token: string): boolean {
  return token.length > 0 && token[0] === '[' && token[token.length - 1] === ']';
}

/** Python's str.strip(). */
function pyStrip(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && charFlags(s.charCodeAt(a)) & F_PY_WHITESPACE) a++;
  while (b > a && charFlags(s.charCodeAt(b - 1)) & F_PY_WHITESPACE) b--;
  return s.slice(a, b);
}

/** Joins tokens into text (bert4keras' rules). */
export function decodeTokens(allTokens: readonly string[]): string {
  const tokens = allTokens.filter((t) => !isSpecial(t));
  let text = '';
  tokens.forEach((token, i) => {
    const single = singleCodePoint(token);
    if (token.startsWith('##')) {
      text += token.slice(2);
    } else if (single >= 0 && isCjkB4K(single)) {
      text += token;
    } else if (single >= 0 && charFlags(single) & F_PUNCT) {
      text += token + ' ';
    } else if (i > 0 && text.length > 0 && isCjkB4K(text.codePointAt(text.length - (isLowSurrogateAt(text) ? 2 : 1))!)) {
      text += token;
    } else {
      text += ' ' + token;
    }
  });
  text = text.replace(/ +/g, ' ');
  text = text.replace(CONTRACTION, "'$1 ");
  text = text.replace(NO_SPACE_AFTER, '$1');
  text = text.replace(DECIMAL, '$1$2');
  return pyStrip(text);
}

function isLowSurrogateAt(text: string): boolean {
  const c = text.charCodeAt(text.length - 1);
  const p = text.length > 1 ? text.charCodeAt(text.length - 2) : 0;
  return c >= 0xdc00 && c <= 0xdfff && p >= 0xd800 && p <= 0xdbff;
}
