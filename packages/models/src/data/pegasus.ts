/**
 * PEGASUS-style pseudo-summary pre-training data of T5 PEGASUS (ALGORITHMS.md §4.3): texts are cut
 * into short sentence units (`textSegmentate(text, 32, '\n。')`), consecutive units are grouped
 * into documents of about 768 characters (`groupPieces`), and each group is split greedily into a
 * SOURCE and a pseudo-summary TARGET by character LCS (`pseudoSummary`). `pseudoSummaryPairs`
 * does all three lazily over a stream of texts. The builder yields texts; truncation to
 * 384 source / 128 target tokens happens later, in the tokenizer.
 *
 * All lengths are counted in Unicode code points, as Python's `len(str)` counts them (a character
 * outside the BMP counts 1, not 2 as `String.length` would).
 */
import { ArgumentError } from '@kexue/core-cuda';

/** The code points for which Python's `str.isspace()` is true (what `str.strip()` removes). */
const PY_WHITESPACE: ReadonlySet<number> = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003,
  0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

/** Number of code points of `s` (Python's `len`). */
function codePointLength(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length - 1; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n--;
        i++;
      }
    }
  }
  return n;
}

/** The code points of `s`. */
function codePoints(s: string): Uint32Array {
  const out = new Uint32Array(codePointLength(s));
  let k = 0;
  for (const ch of s) out[k++] = ch.codePointAt(0)!;
  return out;
}

/** Python's `s.strip(chars)`: removes the code points for which `strip` is true from both ends. */
function pyStrip(s: string, strip: (cp: number) => boolean): string {
  let start = 0;
  while (start < s.length) {
    const cp = s.codePointAt(start)!;
    if (!strip(cp)) break;
    start += cp > 0xffff ? 2 : 1;
  }
  let end = s.length;
  while (end > start) {
    const low = s.charCodeAt(end - 1);
    let width = 1;
    let cp = low;
    if (low >= 0xdc00 && low <= 0xdfff && end - 2 >= start) {
      const high = s.charCodeAt(end - 2);
      if (high >= 0xd800 && high <= 0xdbff) {
        width = 2;
        cp = s.codePointAt(end - 2)!;
      }
    }
    if (!strip(cp)) break;
    end -= width;
  }
  return s.slice(start, end);
}

const isPyWhitespace = (cp: number): boolean => PY_WHITESPACE.has(cp);

function segment(text: string, maxLength: number, seps: readonly string[], level: number, strips: (s: string) => string, out: string[]): void {
  text = strips(text);
  if (level >= seps.length || codePointLength(text) <= maxLength) {
    out.push(text);
    return;
  }
  const sep = seps[level];
  const parts = text.split(sep);
  let acc = '';
  let accLength = 0;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    const partLength = codePointLength(part);
    // flush when the accumulated text, this part and one more separator would exceed maxLength
    if (acc !== '' && part !== '' && accLength + partLength > maxLength - 1) {
      segment(acc, maxLength, seps, level + 1, strips, out);
      acc = '';
      accLength = 0;
    }
    if (i + 1 === parts.length) {
      acc += part;
      accLength += partLength;
    } else {
      acc += part + sep;
      accLength += partLength + 1;
    }
  }
  if (acc !== '') segment(acc, maxLength, seps, level + 1, strips, out);
}

/**
 * Cuts `text` into short pieces, as bert4keras's `snippets.text_segmentate(text, maxlen, seps,
 * strips)` does (bojone/bert4keras, bert4keras/snippets.py; the function T5 PEGASUS `train.py`
 * calls as `text_segmentate(text, 32, u'\n。')`). The behaviour reproduced:
 *
 * 1. The text is stripped: Python whitespace (`str.strip()`: Unicode spaces, '\t\n\v\f\r',
 *    '\x1c'-'\x1f', '\x85'; not U+FEFF), then, when `strips` is given, the characters of `strips`
 *    (`str.strip(strips)`, once, after the whitespace).
 * 2. If no separator is left or the stripped text has at most `maxLength` code points, the result
 *    is `[text]` (so an empty or blank text gives `['']`).
 * 3. Otherwise the text is split on the first separator; the parts are accumulated left to right,
 *    each but the last followed by the separator. Before a non-empty part is added to a non-empty
 *    accumulation, the accumulation is flushed when `length(acc) + length(part) > maxLength - 1`
 *    (acc + part + one separator would exceed maxLength); otherwise the part is merged. Empty parts
 *    (consecutive separators) never cause a flush. Each flushed accumulation, and the one left at
 *    the end, is cut again with the remaining separators (recursively, from step 1).
 *
 * Consequences: '。' stays at the end of the piece it ends; a '\n' that ends a flushed piece is
 * removed by the strip of step 1 (it is whitespace), while a '\n' between merged parts stays inside
 * the piece; a piece that cannot be cut further stays whole even if longer than `maxLength`; a
 * blank line between long lines can give an empty piece `''`.
 *
 * @param text the text to cut.
 * @param maxLength the most code points a piece may have (while separators allow), ≥ 1.
 * @param separators the separators, one code point each, tried in order (default '\n').
 * @param strips characters stripped from both ends of every piece besides whitespace (Python's
 *   `strips`); none when omitted.
 */
export function textSegmentate(text: string, maxLength: number, separators = '\n', strips?: string): string[] {
  if (typeof text !== 'string') throw new ArgumentError(`textSegmentate: text must be a string, got ${typeof text}`);
  if (!Number.isSafeInteger(maxLength) || maxLength < 1) {
    throw new ArgumentError(`textSegmentate: maxLength must be a positive integer, got ${String(maxLength)}`);
  }
  if (typeof separators !== 'string') throw new ArgumentError(`textSegmentate: separators must be a string, got ${typeof separators}`);
  if (strips !== undefined && typeof strips !== 'string') throw new ArgumentError(`textSegmentate: strips must be a string, got ${typeof strips}`);
  let strip: (s: string) => string;
  if (strips === undefined) {
    strip = (s) => pyStrip(s, isPyWhitespace);
  } else {
    const extra = new Set(Array.from(strips, (ch) => ch.codePointAt(0)!));
    strip = (s) => pyStrip(pyStrip(s, isPyWhitespace), (cp) => extra.has(cp));
  }
  const out: string[] = [];
  segment(text, maxLength, Array.from(separators), 0, strip, out);
  return out;
}

/** How `groupPieces` and `pseudoSummaryPairs` close groups. */
export interface GroupOptions {
  /** A group with at least `minPieces` pieces is closed before a piece that would take it past this many code points (default 768 = 1.5 × 512). */
  maxChars?: number;
  /** The fewest pieces a group must have to be closed, and a trailing group to be kept (default 3). */
  minPieces?: number;
}

function groupSettings(who: string, options: GroupOptions): { maxChars: number; minPieces: number } {
  if (options === null || typeof options !== 'object') throw new ArgumentError(`${who}: options must be an object`);
  const { maxChars = 768, minPieces = 3 } = options;
  if (typeof maxChars !== 'number' || !(maxChars > 0) || !Number.isFinite(maxChars)) {
    throw new ArgumentError(`${who}: maxChars must be a positive finite number, got ${String(maxChars)}`);
  }
  if (!Number.isSafeInteger(minPieces) || minPieces < 1) throw new ArgumentError(`${who}: minPieces must be a positive integer, got ${String(minPieces)}`);
  return { maxChars, minPieces };
}

/** The grouping state of ALGORITHMS.md §4.3, fed one piece at a time. */
class PieceGrouper {
  private group: string[] = [];
  private chars = 0;

  constructor(
    private readonly maxChars: number,
    private readonly minPieces: number,
  ) {}

  /** Adds a piece; returns the group it closed, if any. */
  push(piece: string): string[] | undefined {
    const length = codePointLength(piece);
    let closed: string[] | undefined;
    if (this.chars + length > this.maxChars && this.group.length >= this.minPieces) {
      closed = this.group;
      this.group = [];
      this.chars = 0;
    }
    this.group.push(piece);
    this.chars += length;
    return closed;
  }

  /** Ends the current group: returns it when it has at least minPieces pieces, else drops it. */
  finish(): string[] | undefined {
    const group = this.group;
    this.group = [];
    this.chars = 0;
    return group.length >= this.minPieces ? group : undefined;
  }
}

/**
 * Groups consecutive pieces into documents (T5 PEGASUS `train.py` `text_process`): a piece is
 * appended to the current group, except that when the group already has at least `minPieces`
 * pieces and its length plus the piece's would exceed `maxChars` (code points), the group is
 * closed first and the piece starts a new one. So a group with fewer than `minPieces` pieces may
 * exceed `maxChars`. The trailing group is kept only if it has at least `minPieces` pieces.
 * Pieces are taken as given (empty ones count as pieces).
 */
export function groupPieces(pieces: readonly string[], options: GroupOptions = {}): string[][] {
  if (!Array.isArray(pieces)) throw new ArgumentError('groupPieces: pieces must be an array of strings');
  const { maxChars, minPieces } = groupSettings('groupPieces', options);
  const grouper = new PieceGrouper(maxChars, minPieces);
  const groups: string[][] = [];
  for (const piece of pieces) {
    if (typeof piece !== 'string') throw new ArgumentError(`groupPieces: every piece must be a string, got ${typeof piece}`);
    const closed = grouper.push(piece);
    if (closed) groups.push(closed);
  }
  const last = grouper.finish();
  if (last) groups.push(last);
  return groups;
}

/** Options of `pseudoSummary`. */
export interface PseudoSummaryOptions {
  /** Selection stops once chars(TARGET) / chars(SOURCE) exceeds this (default 0.25). */
  summaryRate?: number;
}

/** A (source, pseudo-summary) pair built from one group of pieces. */
export interface PseudoSummary {
  /** The pieces left in SOURCE, joined in their original order (or TARGET's, when swapped). */
  source: string;
  /** The pieces moved to TARGET, joined in their original order (or SOURCE's, when swapped). */
  target: string;
  /** Indices of the pieces moved to TARGET, in the order they were chosen (before any swap). */
  selected: number[];
  /** True when SOURCE ended up shorter than TARGET and the two were swapped. */
  swapped: boolean;
}

/**
 * Length of the longest common subsequence of `a` and `b` (code point arrays): one rolling row
 * over the shorter sequence (O(|a|·|b|) time, O(min) memory). `row` must hold min(|a|,|b|) + 1
 * entries.
 */
function lcsLength(a: Uint32Array, b: Uint32Array, row: Uint16Array | Uint32Array): number {
  if (a.length < b.length) [a, b] = [b, a];
  const m = b.length;
  if (m === 0) return 0;
  row.fill(0, 0, m + 1);
  for (let i = 0; i < a.length; i++) {
    const ai = a[i];
    let diagonal = 0; // row[j - 1] of the previous line
    let left = 0; // row[j - 1] of this line
    for (let j = 1; j <= m; j++) {
      const up = row[j];
      const value = ai === b[j - 1] ? diagonal + 1 : up > left ? up : left;
      row[j] = value;
      diagonal = up;
      left = value;
    }
  }
  return row[m];
}

/**
 * Splits one group of pieces into SOURCE and a pseudo-summary TARGET (ALGORITHMS.md §4.3, T5
 * PEGASUS `train.py` `pseudo_summary`). All pieces start in SOURCE, TARGET is empty. Each round
 * scores every piece i still in SOURCE by the character LCS length of join(SOURCE \ {i}) and
 * join(TARGET ∪ {i}) (pieces joined without separator, in their original order) and moves the
 * best piece to TARGET; ties go to the lowest index, as numpy's `argmax` picks the first maximum.
 * After each move the selection stops when SOURCE has one piece left or chars(TARGET) /
 * chars(SOURCE) > `summaryRate` (strictly; code points). Finally, when SOURCE is shorter than
 * TARGET (strictly), the two are swapped.
 *
 * Cost: O(n²·L²) per group in the worst case (n pieces, L chars); about 10⁷ LCS cells for a
 * 768-char group of 25 pieces.
 *
 * @param pieces the group, at least 2 pieces (with 1 piece Python divides by zero).
 */
export function pseudoSummary(pieces: readonly string[], options: PseudoSummaryOptions = {}): PseudoSummary {
  if (!Array.isArray(pieces)) throw new ArgumentError('pseudoSummary: pieces must be an array of strings');
  if (pieces.length < 2) throw new ArgumentError(`pseudoSummary: a group needs at least 2 pieces, got ${pieces.length}`);
  if (options === null || typeof options !== 'object') throw new ArgumentError('pseudoSummary: options must be an object');
  const { summaryRate = 0.25 } = options;
  if (typeof summaryRate !== 'number' || !Number.isFinite(summaryRate) || summaryRate < 0) {
    throw new ArgumentError(`pseudoSummary: summaryRate must be a finite number ≥ 0, got ${String(summaryRate)}`);
  }
  const units = pieces.map((piece) => {
    if (typeof piece !== 'string') throw new ArgumentError(`pseudoSummary: every piece must be a string, got ${typeof piece}`);
    return codePoints(piece);
  });
  const n = units.length;
  const total = units.reduce((sum, u) => sum + u.length, 0);
  const sourceBuffer = new Uint32Array(total);
  const targetBuffer = new Uint32Array(total);
  const row = total < 0xffff ? new Uint16Array(total + 1) : new Uint32Array(total + 1);
  const inSource = new Array<boolean>(n).fill(true);
  const selected: number[] = [];
  let sourceCount = n;
  let sourceChars = total;
  let targetChars = 0;
  for (;;) {
    let best = -1;
    let bestScore = -1;
    for (let i = 0; i < n; i++) {
      if (!inSource[i]) continue;
      let s = 0;
      let t = 0;
      for (let j = 0; j < n; j++) {
        if (inSource[j] && j !== i) {
          sourceBuffer.set(units[j], s);
          s += units[j].length;
        } else {
          targetBuffer.set(units[j], t);
          t += units[j].length;
        }
      }
      const score = lcsLength(sourceBuffer.subarray(0, s), targetBuffer.subarray(0, t), row);
      if (score > bestScore) {
        best = i;
        bestScore = score;
      }
    }
    inSource[best] = false;
    selected.push(best);
    sourceCount--;
    sourceChars -= units[best].length;
    targetChars += units[best].length;
    // Python: len(target) / len(source) > rate; x/0 is Infinity (stop) here, 0/0 NaN (go on)
    if (sourceCount === 1 || targetChars / sourceChars > summaryRate) break;
  }
  let source = '';
  let target = '';
  for (let j = 0; j < n; j++) {
    if (inSource[j]) source += pieces[j];
    else target += pieces[j];
  }
  const swapped = sourceChars < targetChars;
  return swapped ? { source: target, target: source, selected, swapped } : { source, target, selected, swapped };
}

/** Options of `pseudoSummaryPairs`. */
export interface PseudoSummaryPairsOptions extends GroupOptions, PseudoSummaryOptions {
  /** `maxLength` of `textSegmentate` (default 32). */
  pieceLength?: number;
  /** Separators of `textSegmentate` (default '\n。'). */
  separators?: string;
  /**
   * When false (the default), each text is grouped on its own (its trailing group closed at its
   * end), as T5 PEGASUS `train.py` groups each corpus document; when true, the pieces of
   * consecutive texts form one stream and a group may span texts (a corpus of short lines).
   */
  acrossTexts?: boolean;
}

/** A pair of `pseudoSummaryPairs`, with the group it was built from. */
export interface PseudoSummaryPair extends PseudoSummary {
  /** The group's pieces, in order. */
  pieces: string[];
}

/**
 * Builds the pseudo-summary pairs of a corpus lazily, group by group: every text (a document,
 * e.g. a line of a corpus) is cut with `textSegmentate(text, pieceLength, separators)`, empty
 * pieces (from blank texts or blank lines) are dropped, the pieces are grouped as `groupPieces`
 * does, and each group closed yields `pseudoSummary(group)`. Options are checked at the call; a
 * text that is not a string is an ArgumentError when it is reached.
 */
export function pseudoSummaryPairs(
  texts: AsyncIterable<string> | Iterable<string>,
  options: PseudoSummaryPairsOptions = {},
): AsyncGenerator<PseudoSummaryPair, void, undefined> {
  const who = 'pseudoSummaryPairs';
  if (texts === null || typeof texts !== 'object' || !(Symbol.asyncIterator in texts || Symbol.iterator in texts)) {
    throw new ArgumentError(`${who}: texts must be an iterable or async iterable of strings`);
  }
  const { maxChars, minPieces } = groupSettings(who, options);
  const { pieceLength = 32, separators = '\n。', acrossTexts = false, summaryRate = 0.25 } = options;
  if (minPieces < 2) throw new ArgumentError(`${who}: minPieces must be at least 2 (a pair needs 2 pieces), got ${minPieces}`);
  if (!Number.isSafeInteger(pieceLength) || pieceLength < 1) throw new ArgumentError(`${who}: pieceLength must be a positive integer, got ${String(pieceLength)}`);
  if (typeof separators !== 'string') throw new ArgumentError(`${who}: separators must be a string, got ${typeof separators}`);
  if (typeof summaryRate !== 'number' || !Number.isFinite(summaryRate) || summaryRate < 0) {
    throw new ArgumentError(`${who}: summaryRate must be a finite number ≥ 0, got ${String(summaryRate)}`);
  }
  if (typeof acrossTexts !== 'boolean') throw new ArgumentError(`${who}: acrossTexts must be a boolean, got ${typeof acrossTexts}`);
  const pair = (group: string[]): PseudoSummaryPair => ({ ...pseudoSummary(group, { summaryRate }), pieces: group });
  return (async function* () {
    const grouper = new PieceGrouper(maxChars, minPieces);
    for await (const text of texts) {
      if (typeof text !== 'string') throw new ArgumentError(`${who}: every text must be a string, got ${typeof text}`);
      for (const piece of textSegmentate(text, pieceLength, separators)) {
        if (piece === '') continue;
        const closed = grouper.push(piece);
        if (closed) yield pair(closed);
      }
      if (!acrossTexts) {
        const last = grouper.finish();
        if (last) yield pair(last);
      }
    }
    const last = grouper.finish();
    if (last) yield pair(last);
  })();
}
