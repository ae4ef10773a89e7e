/**
 * The PEGASUS-style pseudo-summary data builder of T5 PEGASUS (ALGORITHMS.md §4.3): bert4keras's
 * text_segmentate, the grouping of pieces into ~768-char documents, the greedy LCS selection,
 * all worked by hand below; then the whole builder on the first 200 LCSTS texts.
 */
import fs from 'node:fs';

import { describe, expect, it } from 'vitest';

import { ArgumentError } from '@kexue/core-cuda';
import { groupPieces, pseudoSummary, pseudoSummaryPairs, textSegmentate, type PseudoSummaryPair } from '@kexue/models';

import { data } from './data-helpers.js';

const chars = (s: string) => Array.from(s).length;

async function collect(it: AsyncIterable<PseudoSummaryPair>): Promise<PseudoSummaryPair[]> {
  const out: PseudoSummaryPair[] = [];
  for await (const p of it) out.push(p);
  return out;
}

describe('textSegmentate (bert4keras snippets.text_segmentate)', () => {
  it("a text of at most maxLength code points is kept whole, stripped; '' gives ['']", () => {
    expect(textSegmentate('  ab\ncd  ', 32, '\n。')).toEqual(['ab\ncd']);
    expect(textSegmentate('', 32, '\n。')).toEqual(['']);
    expect(textSegmentate(' \n ', 32, '\n。')).toEqual(['']);
  });

  it("splits on '\\n', flushing when acc + part + one separator would pass maxLength", () => {
    // 'ab\n' (3) + 'cd' (2) = 5 > 5 - 1: flush; the trailing '\n' of a flushed piece is stripped
    expect(textSegmentate('ab\ncd\nef', 5, '\n。')).toEqual(['ab', 'cd', 'ef']);
    // maxLength 6: 3 + 2 = 5 ≤ 5, merged into 'ab\ncd\n' (6), stripped to 'ab\ncd'; then 6 + 2 > 5: flush
    expect(textSegmentate('ab\ncd\nef', 6, '\n。')).toEqual(['ab\ncd', 'ef']);
  });

  it("then on '。' inside pieces still too long, keeping '。' at the end; unsplittable pieces stay whole", () => {
    // one '\n' part of 16 > 6 → '。' parts ab | cd | efghijkl | m: 'ab。' + 'cd' = 5 ≤ 5 merged to 'ab。cd。',
    // 6 + 8 > 5 flush; 'efghijkl。' (9, no separator left) stays whole; 9 + 1 > 5 flush; 'm'
    expect(textSegmentate('ab。cd。efghijkl。m', 6, '\n。')).toEqual(['ab。cd。', 'efghijkl。', 'm']);
    // an empty part (consecutive separators) never flushes
    expect(textSegmentate('ab。。cd', 3, '\n。')).toEqual(['ab。。', 'cd']);
    // a long line with no separator: whole
    expect(textSegmentate('x'.repeat(40) + '\nyy', 32, '\n。')).toEqual(['x'.repeat(40), 'yy']);
  });

  it("a blank line between long lines gives an empty piece, as in Python", () => {
    // 'abcd\n' flushed before '  ' (5 + 2 > 3), then '  \n' flushed before 'efgh' and stripped to ''
    expect(textSegmentate('abcd\n  \nefgh', 4, '\n。')).toEqual(['abcd', '', 'efgh']);
  });

  it('counts code points (Python len), not UTF-16 units', () => {
    expect(textSegmentate('a😀。b😀。', 7, '。')).toEqual(['a😀。b😀。']); // 6 code points, 8 units
    expect(textSegmentate('a😀。b😀。', 3, '。')).toEqual(['a😀。', 'b😀。']);
  });

  it("strips Python whitespace (with '\\x1c', without U+FEFF) and then the strips characters", () => {
    expect(textSegmentate('\ufeffab\x1c', 32, '')).toEqual(['\ufeffab']);
    expect(textSegmentate(' ,ab, ', 32, '\n', ',')).toEqual(['ab']);
    expect(textSegmentate('\u3000ab\u3000', 32)).toEqual(['ab']);
  });

  it('rejects bad arguments with ArgumentError', () => {
    expect(() => textSegmentate('abc', 0, '\n')).toThrow(ArgumentError);
    expect(() => textSegmentate('abc', 1.5, '\n')).toThrow(ArgumentError);
    expect(() => textSegmentate('abc', Number.NaN, '\n')).toThrow(ArgumentError);
    expect(() => textSegmentate(3 as unknown as string, 3, '\n')).toThrow(ArgumentError);
    expect(() => textSegmentate('abc', 3, 5 as unknown as string)).toThrow(ArgumentError);
  });
});

describe('groupPieces', () => {
  it('closes a group past maxChars only once it has minPieces pieces; short groups may exceed it', () => {
    const pieces = ['aaaa', 'bbbb', 'cccc', 'dd', 'e'.repeat(12), 'f', 'g', 'h', 'ii'];
    // aaaa bbbb (8) + cccc = 12 > 10 with 2 pieces: kept → 12; + dd > 10 with 3 pieces: closed.
    // dd + e×12 = 14 (1 piece), + f = 15 (2 pieces), + g > 10 with 3: closed. g h ii: trailing, 3 pieces: kept.
    expect(groupPieces(pieces, { maxChars: 10 })).toEqual([
      ['aaaa', 'bbbb', 'cccc'],
      ['dd', 'e'.repeat(12), 'f'],
      ['g', 'h', 'ii'],
    ]);
  });

  it('drops a trailing group with fewer than minPieces pieces; reaching maxChars exactly does not close', () => {
    expect(groupPieces(['aaaa', 'bbbb', 'cccc', 'dd', 'e'.repeat(12), 'f', 'g', 'h'], { maxChars: 10 })).toEqual([
      ['aaaa', 'bbbb', 'cccc'],
      ['dd', 'e'.repeat(12), 'f'],
    ]);
    expect(groupPieces(['aaa', 'bbb', 'ccc', 'd'], { maxChars: 10 })).toEqual([['aaa', 'bbb', 'ccc', 'd']]); // 10, not > 10
    expect(groupPieces(['aaa', 'bbb', 'ccc', 'dd'], { maxChars: 10 })).toEqual([['aaa', 'bbb', 'ccc']]); // 11 > 10; [dd] dropped
    expect(groupPieces(['a', 'b'])).toEqual([]);
    expect(groupPieces(['a', 'b'], { minPieces: 2 })).toEqual([['a', 'b']]);
  });

  it('defaults to 768 chars and 3 pieces', () => {
    const piece = 'x'.repeat(32);
    const groups = groupPieces(Array.from({ length: 50 }, () => piece));
    // 24 × 32 = 768 is not past 768; the 25th piece is
    expect(groups.map((g) => g.length)).toEqual([24, 24]); // the trailing 2 pieces are dropped
  });

  it('rejects bad arguments with ArgumentError', () => {
    expect(() => groupPieces(['a'], { maxChars: 0 })).toThrow(ArgumentError);
    expect(() => groupPieces(['a'], { maxChars: Number.POSITIVE_INFINITY })).toThrow(ArgumentError);
    expect(() => groupPieces(['a'], { minPieces: 0 })).toThrow(ArgumentError);
    expect(() => groupPieces('abc' as unknown as string[])).toThrow(ArgumentError);
    expect(() => groupPieces([1 as unknown as string])).toThrow(ArgumentError);
  });
});

describe('pseudoSummary (greedy LCS selection)', () => {
  it('ties go to the lowest index; stops once chars(TARGET)/chars(SOURCE) > 0.25', () => {
    // round 1: i=0 LCS('xyabzw', 'ab') = 2; i=1 LCS('ababzw', 'xy') = 0; i=2 LCS('abxyzw', 'ab') = 2;
    // i=3 LCS('abxyab', 'zw') = 0 → tie 0/2, piece 0 moves; 2/6 > 0.25: stop
    expect(pseudoSummary(['ab', 'xy', 'ab', 'zw'])).toEqual({ source: 'xyabzw', target: 'ab', selected: [0], swapped: false });
  });

  it('a ratio of exactly 0.25 goes on; pieces are joined in their original order', () => {
    // round 1: i=0..3 all score 2 (e.g. i=1: LCS('ababcdef', 'cd')), i=4 scores 0 → piece 0; 2/8 = 0.25: go on.
    // round 2: i=1 LCS('abcdef', 'abcd') = 4; i=2 LCS('cdcdef', 'abab') = 0; i=3 LCS('cdabef', 'abcd') = 2;
    // i=4 LCS('cdabcd', 'abef') = 2 → piece 1; 4/6 > 0.25: stop
    expect(pseudoSummary(['ab', 'cd', 'ab', 'cd', 'ef'])).toEqual({ source: 'abcdef', target: 'abcd', selected: [0, 1], swapped: false });
  });

  it('swaps when SOURCE ends shorter than TARGET', () => {
    // i=0 LCS('abcabcd', 'ab') = 2; i=1 LCS('abcd', 'abcab') = 3; i=2 LCS('ababcab', 'cd') = 1 → piece 1;
    // SOURCE 'abcd' (4) < TARGET 'abcab' (5): swapped
    expect(pseudoSummary(['ab', 'abcab', 'cd'])).toEqual({ source: 'abcab', target: 'abcd', selected: [1], swapped: true });
  });

  it('stops when SOURCE has one piece left, whatever the ratio; equal lengths are not swapped', () => {
    // both score 0, piece 0 moves; 1/9 ≤ 0.25 but one piece is left
    expect(pseudoSummary(['a', 'bcdefghij'])).toEqual({ source: 'bcdefghij', target: 'a', selected: [0], swapped: false });
    expect(pseudoSummary(['abc', 'xyz'])).toEqual({ source: 'xyz', target: 'abc', selected: [0], swapped: false });
    // with a rate no ratio passes, selection runs until one piece is left
    const r = pseudoSummary(['ab', 'xy', 'ab', 'zw'], { summaryRate: 100 });
    expect(r.selected).toHaveLength(3);
    expect(r.swapped).toBe(true);
  });

  it('a 768-char group of 24 pieces takes well under a second', () => {
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed / 2 ** 31);
    const alphabet = Array.from('的一是了我不人在他有这个上们来到时大地为子中你说生国年着就那和要她出也得里后自以会家可下而过天去能对小多然于心学么之都好看起发当没成只如事把还用第样道想作种开美总从无情己面最女但现前些所同日手又行意动');
    const pieces = Array.from({ length: 24 }, () => Array.from({ length: 31 }, () => alphabet[Math.floor(rand() * alphabet.length)]).join('') + '。');
    const t0 = performance.now();
    const r = pseudoSummary(pieces);
    const ms = performance.now() - t0;
    expect(chars(r.source) + chars(r.target)).toBe(768);
    expect(ms).toBeLessThan(1000);
  });

  it('rejects bad arguments with ArgumentError', () => {
    expect(() => pseudoSummary(['only one'])).toThrow(ArgumentError);
    expect(() => pseudoSummary([])).toThrow(ArgumentError);
    expect(() => pseudoSummary(['a', 'b'], { summaryRate: -1 })).toThrow(ArgumentError);
    expect(() => pseudoSummary(['a', 2 as unknown as string])).toThrow(ArgumentError);
  });
});

describe('pseudoSummaryPairs', () => {
  it('segments every text, drops empty pieces, groups across texts and selects per group', async () => {
    const texts = ['ab\nxy', '', 'ab\nzw', '   ', 'cd\nef\ngh'];
    const pairs = await collect(pseudoSummaryPairs(texts, { pieceLength: 3, maxChars: 8, acrossTexts: true }));
    // pieces ab xy ab zw cd ef gh: [ab xy ab zw] (8, not past 8) then + cd > 8 → closed; [cd ef gh] trailing kept
    expect(pairs.map((p) => p.pieces)).toEqual([
      ['ab', 'xy', 'ab', 'zw'],
      ['cd', 'ef', 'gh'],
    ]);
    expect(pairs[0]).toMatchObject({ source: 'xyabzw', target: 'ab' });
    // [cd ef gh]: all score 0, piece 0 moves, 2/4 > 0.25
    expect(pairs[1]).toMatchObject({ source: 'efgh', target: 'cd', selected: [0] });
  });

  it('by default each text is grouped on its own (as T5 PEGASUS groups each document); acrossTexts joins them', async () => {
    const texts = ['ab\nxy\nab', 'zw\ncd', 'ef\ngh\nij'];
    const pairs = await collect(pseudoSummaryPairs(texts, { pieceLength: 3 }));
    expect(pairs.map((p) => p.pieces)).toEqual([
      ['ab', 'xy', 'ab'],
      ['ef', 'gh', 'ij'],
    ]);
    const joined = await collect(pseudoSummaryPairs(texts, { pieceLength: 3, acrossTexts: true }));
    expect(joined.map((p) => p.pieces)).toEqual([['ab', 'xy', 'ab', 'zw', 'cd', 'ef', 'gh', 'ij']]);
  });

  it('is lazy: a group is yielded before later texts are read; async iterables work', async () => {
    let read = 0;
    async function* texts() {
      for (let i = 0; i < 100; i++) {
        read++;
        yield '甲乙丙。丁戊己。庚辛壬。';
      }
    }
    const gen = pseudoSummaryPairs(texts(), { pieceLength: 4, maxChars: 12, acrossTexts: true });
    const first = await gen.next();
    expect(first.done).toBe(false);
    expect(first.value!.pieces).toEqual(['甲乙丙。', '丁戊己。', '庚辛壬。']);
    expect(read).toBe(2); // the group closed when the second text's first piece came
    await gen.return(undefined);
  });

  it('rejects bad options at the call and non-string texts when reached', async () => {
    expect(() => pseudoSummaryPairs(['a'], { pieceLength: 0 })).toThrow(ArgumentError);
    expect(() => pseudoSummaryPairs(['a'], { minPieces: 1 })).toThrow(ArgumentError);
    expect(() => pseudoSummaryPairs(['a'], { maxChars: -1 })).toThrow(ArgumentError);
    expect(() => pseudoSummaryPairs(['a'], { summaryRate: Number.NaN })).toThrow(ArgumentError);
    expect(() => pseudoSummaryPairs(['a'], { separators: 1 as unknown as string })).toThrow(ArgumentError);
    expect(() => pseudoSummaryPairs(5 as unknown as string[])).toThrow(ArgumentError);
    await expect(collect(pseudoSummaryPairs(['a', 7 as unknown as string]))).rejects.toThrow(ArgumentError);
  });

  const lcsts = data('summarization/lcsts/train.tsv');
  it.skipIf(!fs.existsSync(lcsts))('the first 200 LCSTS texts: consistent pairs, quickly', async () => {
    const lines = fs.readFileSync(lcsts, 'utf8').split('\n').slice(0, 200);
    const texts = lines.map((l) => l.replace(/\r$/, '').split('\t')[1] ?? '');
    const allPieces = texts.flatMap((t) => textSegmentate(t, 32, '\n。')).filter((p) => p !== '');
    const t0 = performance.now();
    const pairs = await collect(pseudoSummaryPairs(texts, { acrossTexts: true }));
    const ms = performance.now() - t0;
    console.log(`pseudoSummaryPairs: ${texts.length} LCSTS texts, ${allPieces.length} pieces → ${pairs.length} pairs in ${ms.toFixed(0)} ms`);
    expect(pairs.map((p) => p.pieces)).toEqual(groupPieces(allPieces));
    expect(pairs.length).toBeGreaterThan(10);
    for (const p of pairs) {
      const groupChars = p.pieces.reduce((n, piece) => n + chars(piece), 0);
      expect(p.target.length).toBeGreaterThan(0);
      expect(chars(p.target)).toBeLessThanOrEqual(chars(p.source));
      expect(chars(p.source) + chars(p.target)).toBe(groupChars);
      expect(p.pieces.length).toBeGreaterThanOrEqual(3);
      // source and target are the group's pieces, split in their original order
      const inTarget = new Set(p.selected);
      const picked = p.pieces.filter((_, i) => inTarget.has(i)).join('');
      const rest = p.pieces.filter((_, i) => !inTarget.has(i)).join('');
      expect(p.swapped ? [rest, picked] : [picked, rest]).toEqual([p.target, p.source]);
    }
    expect(ms).toBeLessThan(10_000);
  });
});
