/**
 * The summarization scores of ALGORITHMS.md §4.4 (character level): ROUGE-1/2/L F as the Python
 * `rouge` package computes them (n-gram sets, F = 2PR / (P + R + 1e-8)), sentence BLEU as NLTK's
 * with smoothing method 1, worked by hand here and against NLTK itself on 300 random pairs
 * (tools/golden/fx_summary_metrics.py → fixtures/bleu_nltk.json); the lead baseline.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { describe, expect, it } from 'vitest';

import { SummaryMetrics, lcsLength, leadBaseline, scoringChars, summaryScores } from '@kexue/models';

describe('summaryScores', () => {
  it('a short prediction inside its reference (the rouge package README example)', () => {
    const s = summaryScores('我是人', '我是一个人');
    // unigrams: P 3/3, R 3/5; bigrams: {我是, 是人} against {我是, 是一, 一个, 个人}: P 1/2, R 1/4
    expect(s.rouge1).toBeCloseTo(0.7499999953125, 12);
    expect(s.rouge2).toBeCloseTo((2 * 0.5 * 0.25) / (0.75 + 1e-8), 12);
    expect(s.rougeL).toBeCloseTo(0.7499999953125, 12);
    // p1 = 1, p2 = 1/2, p3 and p4 have no match: 0.1 / their counts (1, and 1 for none); BP = exp(1 − 5/3)
    expect(s.bleu).toBeCloseTo(Math.exp(1 - 5 / 3) * Math.exp(0.25 * (Math.log(0.5) + 2 * Math.log(0.1))), 12);
  });

  it('n-grams count once each (sets), BLEU clips repeated ones to the reference counts', () => {
    const s = summaryScores('哈哈哈哈', '哈哈');
    expect(s.rouge1).toBeCloseTo(2 / (2 + 1e-8), 12); // {哈} against {哈}
    expect(s.rouge2).toBeCloseTo(2 / (2 + 1e-8), 12); // {哈哈} against {哈哈}
    expect(s.rougeL).toBeCloseTo((2 * 0.5 * 1) / (1.5 + 1e-8), 12); // LCS 2 of 4 and of 2
    // p1 = 2/4, p2 = 1/3, p3 = 0.1/2, p4 = 0.1/1; longer than the reference: no brevity penalty
    expect(s.bleu).toBeCloseTo(Math.exp(0.25 * (Math.log(0.5) + Math.log(1 / 3) + Math.log(0.05) + Math.log(0.1))), 12);
  });

  it('case and whitespace do not count; an empty prediction or no matching character scores 0', () => {
    expect(scoringChars('A b\tC')).toEqual(['a', 'b', 'c']);
    expect(summaryScores('AB c', 'abc')).toEqual(summaryScores('abc', 'abc'));
    expect(summaryScores('abc', 'abc').rougeL).toBeCloseTo(1, 7);
    expect(summaryScores('   ', '标题')).toEqual({ rouge1: 0, rouge2: 0, rougeL: 0, bleu: 0 });
    expect(summaryScores('甲乙', '丙丁').bleu).toBe(0);
  });

  it("BLEU equals NLTK's sentence_bleu (method 1) on 300 random character pairs", () => {
    const here = path.dirname(fileURLToPath(import.meta.url));
    const { cases } = JSON.parse(readFileSync(path.join(here, 'fixtures', 'bleu_nltk.json'), 'utf8')) as { cases: { reference: string; prediction: string; bleu: number }[] };
    expect(cases).toHaveLength(300);
    expect(cases.filter((c) => c.bleu === 0).length).toBeGreaterThan(0); // some share no character
    for (const c of cases) expect(summaryScores(c.prediction, c.reference).bleu, `${c.prediction} | ${c.reference}`).toBeCloseTo(c.bleu, 12);
  });

  it('lcsLength', () => {
    expect(lcsLength([...'ABCBDAB'], [...'BDCABA'])).toBe(4);
    expect(lcsLength([], [...'abc'])).toBe(0);
  });
});

describe('SummaryMetrics and the lead baseline', () => {
  it('average over pairs; the lead takes as many source characters as the mean reference', () => {
    const m = new SummaryMetrics();
    m.update('我是人', '我是一个人');
    m.update('', '标题');
    expect(m.count).toBe(2);
    expect(m.result().rouge1).toBeCloseTo(0.7499999953125 / 2, 12);
    // mean reference length (2 + 4) / 2 = 3: the leads are 'abc' and 'xyz'
    const lead = leadBaseline([
      { source: 'abcdef', target: 'ab' },
      { source: 'xyzuvw', target: 'wxyz' },
    ]);
    expect(lead.rouge1).toBeCloseTo((2 * (2 / 3) * 1) / (2 / 3 + 1 + 1e-8) / 2 + (2 * 1 * (3 / 4)) / (1 + 3 / 4 + 1e-8) / 2, 12);
  });
});
