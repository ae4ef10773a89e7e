/**
 * Every reader on the real files of ../shared/data: the record counts the data README states, and
 * contents checked against references computed independently with Python (json, str.split).
 */
import { describe, expect, it } from 'vitest';

import {
  PAIR_MAX_LABEL,
  readCluener,
  readResume,
  readSentencePairs,
  readSummarization,
  readTextCorpus,
  readWeibo,
  type NerRecord,
} from '@kexue/models';

import { expectCodeAsync } from '../../core-cuda/test/helpers.js';
import { data } from './data-helpers.js';

function countBy<T>(items: Iterable<T>, key: (x: T) => string | number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of items) out[key(x)] = (out[key(x)] ?? 0) + 1;
  return out;
}

function checkEntities(records: NerRecord[]) {
  for (const r of records) {
    for (const e of r.entities) {
      expect(e.start).toBeGreaterThanOrEqual(0);
      expect(e.end).toBeGreaterThan(e.start);
      expect(e.end).toBeLessThanOrEqual(r.text.length);
      expect(r.text.slice(e.start, e.end)).toBe(e.text);
    }
  }
}

describe('CLUENER', () => {
  it('reads train (9,748) and dev (1,343) with every entity in place', async () => {
    // Entity counts by type from Python's json over the same files.
    const expected = {
      train: { name: 3390, organization: 2905, position: 2834, company: 2720, address: 2617, game: 2186, government: 1683, scene: 1371, book: 1017, movie: 1004 },
      dev: { name: 465, position: 433, company: 378, address: 373, organization: 367, game: 295, government: 247, scene: 209, book: 154, movie: 151 },
    };
    for (const [split, n] of [['train', 9748], ['dev', 1343]] as const) {
      const stream = readCluener(data(`ner/cluener/${split}.jsonl`));
      const records = await stream.toArray();
      expect(records.length).toBe(n);
      expect(stream.stats).toMatchObject({ records: n, skipped: 0, lines: n });
      checkEntities(records);
      expect(countBy(records.flatMap((r) => r.entities), (e) => e.type)).toEqual(expected[split]);
    }
  });

  it('converts inclusive ends to exclusive ends', async () => {
    for await (const r of readCluener(data('ner/cluener/train.jsonl'))) {
      expect(r.text.startsWith('浙商银行企业信贷部叶老桂博士')).toBe(true);
      expect(r.line).toBe(1);
      expect(r.entities).toEqual([
        { type: 'company', start: 0, end: 4, text: '浙商银行' },
        { type: 'name', start: 9, end: 12, text: '叶老桂' },
      ]);
      break;
    }
  });
});

describe('Resume (BMES)', () => {
  // Entity counts from an independent Python decoder (conlleval rules) over the same files.
  const expected = {
    train: { n: 3821, repaired: 4, chars: 124099, types: { CONT: 260, EDU: 858, LOC: 47, NAME: 952, ORG: 4613, PRO: 287, RACE: 115, TITLE: 6308 } },
    dev: { n: 463, repaired: 0, chars: 13890, types: { CONT: 33, EDU: 106, LOC: 2, NAME: 110, ORG: 523, PRO: 18, RACE: 15, TITLE: 690 } },
  };
  for (const split of ['train', 'dev'] as const) {
    it(`reads ${split} (${expected[split].n} sentences)`, async () => {
      const stream = readResume(data(`ner/resume/${split}.char.bmes`));
      const records = await stream.toArray();
      const want = expected[split];
      expect(records.length).toBe(want.n);
      expect(stream.stats.repaired).toBe(want.repaired);
      expect(stream.stats.skipped).toBe(0);
      expect(records.reduce((s, r) => s + r.text.length, 0)).toBe(want.chars);
      for (const r of records) expect(r.tags.length).toBe(r.chars.length);
      checkEntities(records);
      expect(countBy(records.flatMap((r) => r.entities), (e) => e.type)).toEqual(want.types);
    });
  }

  it('gives the first sentence its entities and line', async () => {
    const [first, second] = (await readResume(data('ner/resume/train.char.bmes')).toArray()).slice(0, 2);
    expect(first!.line).toBe(1);
    expect(first!.entities.slice(0, 2).map((e) => [e.type, e.text])).toEqual([
      ['NAME', '高勇'],
      ['CONT', '中国国籍'],
    ]);
    expect(second!.line).toBe(first!.chars.length + 2);
  });

  it("refuses the training file's repaired sequences in strict mode, or skips them", async () => {
    const strict = readResume(data('ner/resume/train.char.bmes'), { tagSequence: 'strict' });
    expect(await expectCodeAsync(strict.toArray(), 'E_FORMAT')).toMatchObject({ line: 62390, reason: expect.stringContaining('no E- tag') });
    const skipping = readResume(data('ner/resume/train.char.bmes'), { tagSequence: 'strict', onMalformed: 'skip' });
    expect((await skipping.toArray()).length).toBe(3821 - 4);
    expect(skipping.stats.skipped).toBe(4);
    expect(skipping.stats.errors.map((e) => e.line)).toEqual([62390, 62392, 64412, 64414]);
  });
});

describe('Weibo (BIO)', () => {
  const expected = {
    train: { n: 1350, repaired: 8, chars: 73790, types: { 'GPE.NAM': 205, 'GPE.NOM': 8, 'LOC.NAM': 56, 'LOC.NOM': 51, 'ORG.NAM': 183, 'ORG.NOM': 42, 'PER.NAM': 578, 'PER.NOM': 772 } },
    dev: { n: 270, repaired: 0, chars: 14525, types: { 'GPE.NAM': 26, 'GPE.NOM': 1, 'LOC.NAM': 6, 'LOC.NOM': 6, 'ORG.NAM': 47, 'ORG.NOM': 5, 'PER.NAM': 90, 'PER.NOM': 208 } },
  };
  for (const split of ['train', 'dev'] as const) {
    it(`reads ${split} (${expected[split].n} sentences) with the position digits stripped`, async () => {
      const stream = readWeibo(data(`ner/weibo/${split}.conll`));
      const records = await stream.toArray();
      const want = expected[split];
      expect(records.length).toBe(want.n);
      expect(stream.stats.repaired).toBe(want.repaired);
      expect(records.reduce((s, r) => s + r.text.length, 0)).toBe(want.chars);
      checkEntities(records);
      expect(countBy(records.flatMap((r) => r.entities), (e) => e.type)).toEqual(want.types);
      // No character keeps a trailing position digit except digits themselves.
      for (const r of records) for (const c of r.chars) expect(c.length === 1 || c === '\uFFFD\uFFFD').toBe(true);
    });
  }

  it('strips multi-digit positions, also after digit characters', async () => {
    const records = await readWeibo(data('ner/weibo/dev.conll')).toArray();
    // dev.conll lines 5828..5839: 310 011 712 913 114 715 416 317 418 419 820 621 (digits at 10..21).
    const r = records.find((x) => x.line <= 5828 && x.line + x.chars.length > 5839)!;
    const at = 5828 - r.line;
    expect(r.chars.slice(at, at + 12).join('')).toBe('307917434486');
    expect(r.text.endsWith('307917434486')).toBe(true);
  });
});

describe('sentence pairs', () => {
  // Label counts from Python over the same files.
  const cases = [
    ['ATEC/ATEC.valid.data', 'ATEC', { 0: 16312, 1: 3688 }],
    ['BQ/BQ.valid.data', 'BQ', { 0: 5000, 1: 5000 }],
    ['LCQMC/LCQMC.valid.data', 'LCQMC', { 0: 4400, 1: 4402 }],
    ['PAWSX/PAWSX.valid.data', 'PAWSX', { 0: 1147, 1: 853 }],
    ['STS-B/STS-B.train.data', 'STS-B', { 0: 836, 1: 807, 2: 887, 3: 1416, 4: 1033, 5: 252 }],
    ['STS-B/STS-B.valid.data', 'STS-B', { 0: 333, 1: 247, 2: 267, 3: 354, 4: 205, 5: 52 }],
  ] as const;
  for (const [file, set, labels] of cases) {
    it(`reads ${file}`, async () => {
      const records = await readSentencePairs(data(`sts/${file}`), { maxLabel: PAIR_MAX_LABEL[set] }).toArray();
      expect(countBy(records, (r) => r.label)).toEqual(labels);
      expect(records.length).toBe(Object.values(labels).reduce((a, b) => a + b, 0));
      for (const r of records) expect(r.a.length > 0 && r.b.length > 0).toBe(true);
    });
  }

  it('reads STS-B train: 5,231 pairs, the first as in the file', async () => {
    const records = await readSentencePairs(data('sts/STS-B/STS-B.train.data'), { maxLabel: 5 }).toArray();
    expect(records.length).toBe(5231);
    expect(records[0]).toEqual({ a: '一架飞机要起飞了。', b: '一架飞机正在起飞。', label: 5, line: 1 });
  });

  it('refuses STS-B scores with binary labels', async () => {
    expect(await expectCodeAsync(readSentencePairs(data('sts/STS-B/STS-B.train.data')).toArray(), 'E_FORMAT')).toMatchObject({ line: 1 });
  });
});

describe('summarization', () => {
  it('reads CSL (2,800 / 350): abstract → title', async () => {
    const train = await readSummarization(data('summarization/csl/train.tsv'), { format: 'csl' }).toArray();
    expect(train.length).toBe(2800);
    expect(train[0]!.target).toBe('测试驱动过程模型在辅助决策系统开发中的应用');
    expect(train[0]!.source.startsWith('为了解决辅助决策系统中模型')).toBe(true);
    expect((await readSummarization(data('summarization/csl/dev.tsv'), { format: 'csl' }).toArray()).length).toBe(350);
  });

  it('reads LCSTS (8,666 / 1,000): text → summary', async () => {
    const train = await readSummarization(data('summarization/lcsts/train.tsv'), { format: 'lcsts' }).toArray();
    expect(train.length).toBe(8666);
    expect(train[0]!.target).toBe('林志颖公司疑涉虚假营销无厂房无研发');
    expect(train[0]!.source.startsWith('日前，方舟子发文直指林志颖')).toBe(true);
    const longer = train.filter((r) => r.source.length > r.target.length).length;
    expect(longer).toBe(train.length);
    expect((await readSummarization(data('summarization/lcsts/dev.tsv'), { format: 'lcsts' }).toArray()).length).toBe(1000);
  });
});

describe('plain text', () => {
  it('reads a corpus one document a line', async () => {
    const stream = readTextCorpus(data('summarization/lcsts/dev.tsv'));
    const docs = await stream.toArray();
    expect(docs.length).toBe(1000);
    expect(docs[999]!.line).toBe(1000);
  });
});
