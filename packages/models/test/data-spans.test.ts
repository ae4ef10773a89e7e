/** Character spans ↔ token spans on hand-made offset arrays (no tokenizer involved). */
import { describe, expect, it } from 'vitest';

import { entitiesToTokens, readCluener, tokensToEntities, TokenSpanMapper, type TokenOffset } from '@kexue/models';

import { expectCode } from '../../core-cuda/test/helpers.js';
import { data } from './data-helpers.js';

describe('TokenSpanMapper', () => {
  // "我在New York工作": [CLS] 我 在 new york 工 作 [SEP]; the space (5) is dropped.
  const text = '我在New York工作';
  const offsets: TokenOffset[] = [[0, 0], [0, 1], [1, 2], [2, 5], [6, 10], [10, 11], [11, 12], [0, 0]];
  const m = new TokenSpanMapper(offsets);

  it('maps an entity to its tokens and back', () => {
    expect(m.toTokens(2, 10)).toEqual([3, 4]);
    expect(m.toChars(3, 4)).toEqual([2, 10]);
    expect(text.slice(2, 10)).toBe('New York');
    expect(m.toTokens(0, 1)).toEqual([1, 1]);
    expect(m.toTokens(10, 12)).toEqual([5, 6]);
  });

  it('widens a span to the multi-character tokens it touches', () => {
    expect(m.toTokens(3, 4)).toEqual([3, 3]); // "e" inside "New"
    expect(m.toChars(3, 3)).toEqual([2, 5]);
    expect(m.toTokens(4, 7)).toEqual([3, 4]); // "w Y"
  });

  it('finds no token for dropped characters, and trims them at span edges', () => {
    expect(m.toTokens(5, 6)).toBeUndefined(); // the space alone
    expect(m.toTokens(5, 7)).toEqual([4, 4]); // " Y": only York
    expect(m.toTokens(2, 6)).toEqual([3, 3]); // "New ": only New
    expect(m.toTokens(12, 20)).toBeUndefined(); // past the text (truncated)
  });

  it('skips special tokens going back to characters', () => {
    expect(m.toChars(0, 0)).toBeUndefined();
    expect(m.toChars(7, 7)).toBeUndefined();
    expect(m.toChars(0, 2)).toEqual([0, 2]);
    expect(m.toChars(0, 7)).toEqual([0, 12]);
  });

  it('handles WordPiece pieces and control characters the tokenizer dropped', () => {
    // "un\u0000affable x": un ##aff ##able x; the NUL (2) and the space (10) are dropped.
    const wp = new TokenSpanMapper([[0, 0], [0, 2], [3, 6], [6, 10], [11, 12], [0, 0]]);
    expect(wp.toTokens(4, 8)).toEqual([2, 3]);
    expect(wp.toTokens(2, 3)).toBeUndefined();
    expect(wp.toTokens(1, 4)).toEqual([1, 2]);
    expect(wp.toChars(1, 3)).toEqual([0, 10]);
    expect(wp.toTokens(0, 12)).toEqual([1, 4]);
  });

  it('handles tokens sharing characters (a character split into several tokens)', () => {
    // One character expanded by normalization into two tokens with the same offsets.
    const exp = new TokenSpanMapper([[0, 0], [0, 1], [1, 2], [1, 2], [2, 3], [0, 0]]);
    expect(exp.toTokens(1, 2)).toEqual([2, 3]);
    expect(exp.toChars(2, 2)).toEqual([1, 2]);
    expect(exp.toTokens(0, 3)).toEqual([1, 4]);
  });

  it('maps one segment of a pair', () => {
    // [CLS] 甲 乙 [SEP] 丙 丁 [SEP]: the second segment's offsets refer to its own text.
    const offs: TokenOffset[] = [[0, 0], [0, 1], [1, 2], [0, 0], [0, 1], [1, 2], [0, 0]];
    expectCode(() => new TokenSpanMapper(offs), 'E_ARG');
    const b = new TokenSpanMapper(offs, { tokens: [4, 7] });
    expect(b.toTokens(1, 2)).toEqual([5, 5]);
    expect(b.toChars(4, 6)).toEqual([0, 2]);
    expect(b.toChars(0, 3)).toBeUndefined();
    const a = new TokenSpanMapper(offs, { tokens: [0, 4] });
    expect(a.toTokens(0, 2)).toEqual([1, 2]);
  });

  it('is the identity token → char → token on random offsets', () => {
    let seed = 1;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let trial = 0; trial < 200; trial++) {
      const offs: TokenOffset[] = [[0, 0]];
      let pos = 0;
      const n = 1 + rnd(30);
      for (let i = 0; i < n; i++) {
        pos += rnd(3); // dropped characters
        const len = 1 + rnd(4);
        offs.push([pos, pos + len]);
        pos += len;
      }
      offs.push([0, 0]);
      const mapper = new TokenSpanMapper(offs);
      for (let k = 0; k < 20; k++) {
        const first = 1 + rnd(n);
        const last = first + rnd(n - first + 1);
        const c = mapper.toChars(first, last)!;
        expect(mapper.toTokens(c[0], c[1])).toEqual([first, last]);
      }
    }
  });

  it('checks offsets and spans (E_ARG)', () => {
    expectCode(() => new TokenSpanMapper([[0, 2], [1, 1.5] as unknown as TokenOffset]), 'E_ARG');
    expectCode(() => new TokenSpanMapper([[2, 1]]), 'E_ARG');
    expectCode(() => new TokenSpanMapper([[0, 3], [1, 2]]), 'E_ARG');
    expectCode(() => new TokenSpanMapper([[0, 1]], { tokens: [0, 2] }), 'E_ARG');
    expectCode(() => m.toTokens(3, 3), 'E_ARG');
    expectCode(() => m.toTokens(-1, 2), 'E_ARG');
    expectCode(() => m.toChars(2, 1), 'E_ARG');
    expectCode(() => m.toChars(0, 8), 'E_ARG');
  });
});

describe('entities ↔ tokens', () => {
  it('round-trips every CLUENER dev entity through a character tokenizer that drops spaces', async () => {
    let entities = 0;
    let dropped = 0;
    for await (const r of readCluener(data('ner/cluener/dev.jsonl'))) {
      // [CLS], one token per non-whitespace character, [SEP].
      const offsets: TokenOffset[] = [[0, 0]];
      for (let i = 0; i < r.text.length; i++) if (!/\s/.test(r.text[i]!)) offsets.push([i, i + 1]);
      offsets.push([0, 0]);
      const mapper = new TokenSpanMapper(offsets);
      const mapped = entitiesToTokens(r.entities, mapper);
      dropped += mapped.dropped.length;
      const back = tokensToEntities(mapped.spans, mapper, r.text);
      // Back equals the entity trimmed of whitespace at its edges.
      const trimmed = r.entities.filter((e) => e.text.trim().length > 0).map((e) => {
        const lead = e.text.length - e.text.trimStart().length;
        const trail = e.text.length - e.text.trimEnd().length;
        return { ...e, start: e.start + lead, end: e.end - trail, text: e.text.trim() };
      });
      expect(back).toEqual(trimmed);
      entities += r.entities.length;
    }
    expect(entities).toBe(3072);
    expect(dropped).toBe(0);
  });

  it('reports entities that fall outside the tokens (truncation)', () => {
    const mapper = new TokenSpanMapper([[0, 0], [0, 1], [1, 2], [0, 0]]); // text truncated after 2 chars
    const res = entitiesToTokens(
      [{ type: 'a', start: 0, end: 2, text: 'xy' }, { type: 'b', start: 3, end: 5, text: 'zw' }],
      mapper,
    );
    expect(res.spans).toEqual([{ type: 'a', first: 1, last: 2 }]);
    expect(res.dropped.map((e) => e.type)).toEqual(['b']);
  });
});
