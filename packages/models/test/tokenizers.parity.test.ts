/**
 * BertTokenizer against an independent implementation, @huggingface/tokenizers, on every text of
 * ../shared/data (CLUENER, CSL, LCSTS, every STS file): identical ids and tokens; offsets checked
 * by mapping each token back to its span and normalizing it with the reference's normalizer.
 */
import { describe, expect, it } from 'vitest';
import { Tokenizer } from '@huggingface/tokenizers';
import { BertTokenizer, type Encoding } from '@kexue/models';
import { allTexts, bertVocab, dataRoot, hasData, hfTokenizerJson } from './tokenizers.helpers.js';

interface Mismatch {
  set: string;
  text: string;
  ours: string;
  ref: string;
}

/** Checks every non-special token's span: inside the text, in order, and normalizing to the token. */
function offsetProblems(text: string, enc: Encoding, normalize: (s: string) => string): string[] {
  const problems: string[] = [];
  let prevEnd = 0;
  for (let t = 0; t < enc.ids.length; t++) {
    const [s, e] = enc.offsets[t]!;
    const token = enc.tokens[t]!;
    if (token === '[CLS]' || token === '[SEP]') {
      if (s !== 0 || e !== 0) problems.push(`${token} at ${t} has offsets [${s}, ${e})`);
      continue;
    }
    if (!(s >= prevEnd && e > s && e <= text.length)) problems.push(`token ${t} ${token}: bad span [${s}, ${e}) after ${prevEnd}`);
    prevEnd = e;
    const surface = normalize(text.slice(s, e)).replace(/ /g, '');
    if (token !== '[UNK]' && surface !== token.replace(/^##/, '')) {
      problems.push(`token ${t} ${token}: span [${s}, ${e}) is ${JSON.stringify(text.slice(s, e))}, normalized ${JSON.stringify(surface)}`);
    }
    if (token === '[UNK]' && surface.length === 0) problems.push(`[UNK] at ${t} covers nothing`);
  }
  return problems;
}

describe('BertTokenizer parity with @huggingface/tokenizers on ../shared/data', () => {
  it('finds the data', () => {
    expect(hasData, `the data sets are expected at ${dataRoot}`).toBe(true);
  });

  const sets = hasData ? allTexts() : {};

  // Cased: the default (lowercase) run covers every text; the cased run, the sets with Latin text.
  const cased = new Set(['cluener', 'csl', 'lcsts']);
  for (const lowercase of [true, false]) {
    const title = lowercase ? 'every text, with correct offsets' : 'CLUENER, CSL and LCSTS cased';
    it(`gives identical ids and tokens on ${title} (lowercase ${lowercase})`, () => {
      const ours = BertTokenizer.fromVocab(bertVocab, { lowercase });
      const ref = new Tokenizer(hfTokenizerJson(bertVocab, lowercase), {});
      const normalize = (s: string) => ref.normalizer!(s) as string;
      const mismatches: Mismatch[] = [];
      const offsetIssues: string[] = [];
      let total = 0;
      for (const [set, texts] of Object.entries(sets)) {
        if (!lowercase && !cased.has(set)) continue;
        for (const text of texts) {
          total++;
          const a = ours.encode(text);
          const b = ref.encode(text);
          if (a.ids.join(' ') !== b.ids.join(' ') || a.tokens.join('\u0001') !== b.tokens.join('\u0001')) {
            mismatches.push({ set, text, ours: a.tokens.join(' '), ref: b.tokens.join(' ') });
          }
          if (lowercase) for (const p of offsetProblems(text, a, normalize)) offsetIssues.push(`${set} ${JSON.stringify(text.slice(0, 40))}: ${p}`);
        }
      }
      console.log(`[tokenizers] BERT parity (lowercase ${lowercase}): ${total - mismatches.length}/${total} texts identical`);
      expect(total).toBeGreaterThan(lowercase ? 130_000 : 36_000);
      expect(mismatches.slice(0, 3)).toEqual([]);
      expect(offsetIssues.slice(0, 5)).toEqual([]);
    });
  }
});
