/**
 * Malformed input: errors name the file and 1-based line; skipping counts what it drops; BOM, CRLF,
 * invalid UTF-8, overlong lines, chunk boundaries and unreadable files.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { FormatError, KexueIOError } from '@kexue/core-cuda';
import {
  DataFormatError,
  readCluener,
  readResume,
  readSentencePairs,
  readSummarization,
  readTextCorpus,
  readWeibo,
  type RecordStream,
} from '@kexue/models';

import { expectCode, expectCodeAsync } from '../../core-cuda/test/helpers.js';
import { data, fixture } from './data-helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kexue-data-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
function tmpFile(content: string | Buffer): string {
  const file = path.join(tmp, `f${counter++}`);
  fs.writeFileSync(file, content);
  return file;
}

async function drain(stream: RecordStream<unknown>): Promise<void> {
  for await (const _ of stream) void _;
}

/** The error that reading the stream throws, asserted to be a DataFormatError (E_FORMAT). */
async function firstError(stream: RecordStream<unknown>): Promise<DataFormatError> {
  const err = await expectCodeAsync(drain(stream), 'E_FORMAT');
  expect(err).toBeInstanceOf(DataFormatError);
  return err as DataFormatError;
}

describe('CLUENER malformed records', () => {
  const file = fixture('cluener_bad.jsonl');

  it('stops at the first one with file and line', async () => {
    const err = await firstError(readCluener(file));
    expect(err).toBeInstanceOf(DataFormatError);
    expect(err).toBeInstanceOf(FormatError);
    expect(err.file).toBe(file);
    expect(err.line).toBe(2);
    expect(err.message).toMatch(/cluener_bad\.jsonl:2: invalid JSON/);
  });

  it('skips and counts them, keeping each reason and line', async () => {
    const seen: number[] = [];
    const stream = readCluener(file, { onMalformed: 'skip', onSkip: (e) => seen.push(e.line) });
    const records = await stream.toArray();
    expect(records.map((r) => r.line)).toEqual([1, 7, 8]);
    expect(stream.stats).toMatchObject({ records: 3, skipped: 4, lines: 8 });
    expect(seen).toEqual([2, 3, 5, 6]);
    const reasons = stream.stats.errors.map((e) => e.reason);
    expect(reasons[1]).toBe('label "address": span [1, 2] is "京欢" in the text, not "北京"');
    expect(reasons[2]).toMatch(/span \[0, 2\] is outside the text \(2 characters\)/);
    expect(reasons[3]).toMatch(/string "text"/);
  });

  it('counts offsets in code points and returns string indices', async () => {
    const records = await readCluener(file, { onMalformed: 'skip' }).toArray();
    const emoji = records[1]!;
    expect(emoji.text).toBe('测试😀文本');
    expect(emoji.entities).toEqual([{ type: 'name', start: 4, end: 6, text: '文本' }]);
    expect(records[2]!.entities).toEqual([]);
    expect(records[0]!.entities.map((e) => [e.type, e.start, e.end])).toEqual([['name', 0, 3], ['company', 4, 8]]);
  });

  it('reads a file with a BOM and CRLF line ends like the plain one', async () => {
    const src = fs.readFileSync(data('ner/cluener/dev.jsonl'), 'utf8');
    const dos = tmpFile('\uFEFF' + src.replace(/\n/g, '\r\n'));
    const a = await readCluener(data('ner/cluener/dev.jsonl')).toArray();
    const b = await readCluener(dos).toArray();
    expect(b).toEqual(a);
  });

  it('gives the same records whatever the chunk size (lines and characters split across chunks)', async () => {
    const a = await readCluener(data('ner/cluener/dev.jsonl')).toArray();
    const b = await readCluener(data('ner/cluener/dev.jsonl'), { chunkBytes: 13 }).toArray();
    expect(b).toEqual(a);
  });
});

describe('Resume malformed sentences', () => {
  const file = fixture('resume_bad.bmes');

  it('reports the line of the bad tag', async () => {
    const err = await firstError(readResume(file));
    expect(err).toMatchObject({ line: 7, reason: 'unknown BMES tag "X-ORG"' });
  });

  it('skips whole sentences and repairs tag sequences by default', async () => {
    const stream = readResume(file, { onMalformed: 'skip' });
    const records = await stream.toArray();
    expect(records.map((r) => r.text)).toEqual(['叶老桂，', '中国', '上海']);
    expect(records.map((r) => r.line)).toEqual([1, 10, 15]);
    expect(stream.stats).toMatchObject({ skipped: 2, repaired: 1 });
    expect(stream.stats.errors.map((e) => [e.line, e.reason])).toEqual([
      [7, 'unknown BMES tag "X-ORG"'],
      [13, 'expected "char TAG", got "无分隔符"'],
    ]);
    expect(records[0]!.entities).toEqual([{ type: 'NAME', start: 0, end: 3, text: '叶老桂' }]);
    expect(records[1]!.entities).toEqual([{ type: 'ORG', start: 0, end: 2, text: '中国' }]);
    expect(records[2]!.entities).toEqual([{ type: 'LOC', start: 0, end: 1, text: '上' }]);
  });

  it('refuses invalid sequences in strict mode, at the offending tag', async () => {
    const stream = readResume(file, { onMalformed: 'skip', tagSequence: 'strict' });
    const records = await stream.toArray();
    expect(records.map((r) => r.text)).toEqual(['叶老桂，', '上海']);
    expect(stream.stats.errors.map((e) => e.line)).toEqual([7, 10, 13]);
    expect(stream.stats.errors[1]!.reason).toBe('invalid tag sequence: M-ORG does not follow B-ORG or M-ORG');
  });

  it('tolerates CRLF and a BOM', async () => {
    const dos = tmpFile('\uFEFF' + fs.readFileSync(file, 'utf8').replace(/\n/g, '\r\n'));
    const a = await readResume(file, { onMalformed: 'skip' }).toArray();
    const b = await readResume(dos, { onMalformed: 'skip' }).toArray();
    expect(b).toEqual(a);
  });
});

describe('Weibo malformed sentences', () => {
  const file = fixture('weibo_bad.conll');

  it('strips positions (also after a digit or a damaged emoji) and reports missing ones', async () => {
    const stream = readWeibo(file, { onMalformed: 'skip' });
    const records = await stream.toArray();
    expect(records.map((r) => r.line)).toEqual([1, 6, 12, 18]);
    expect(records[2]!.chars).toEqual(['3', '\uFFFD\uFFFD', '人']);
    expect(records[2]!.text).toBe('3\uFFFD\uFFFD人');
    expect(records[2]!.entities).toEqual([{ type: 'PER.NOM', start: 3, end: 4, text: '人' }]);
    expect(records[1]!.entities).toEqual([{ type: 'GPE.NAM', start: 0, end: 2, text: '北京' }]);
    expect(stream.stats).toMatchObject({ skipped: 2, repaired: 1, records: 4 });
    expect(stream.stats.errors.map((e) => [e.line, e.reason])).toEqual([
      [9, '"上" lacks the position digits after the character'],
      [16, 'unknown BIO tag "E-PER.NOM"'],
    ]);
  });

  it('stops at line 6 in strict mode', async () => {
    const err = await firstError(readWeibo(file, { tagSequence: 'strict' }));
    expect(err.line).toBe(6);
    expect(err.reason).toMatch(/I-GPE.NAM does not follow B-GPE.NAM/);
  });
});

describe('TSV malformed lines', () => {
  it('sentence pairs: columns, empty fields and labels', async () => {
    const file = fixture('pairs_bad.tsv');
    expect(await firstError(readSentencePairs(file))).toMatchObject({ line: 2, reason: 'label "2" is not an integer in [0, 1]' });
    const stream = readSentencePairs(file, { onMalformed: 'skip' });
    expect((await stream.toArray()).map((r) => [r.line, r.label])).toEqual([[1, 1], [7, 0]]);
    expect(stream.stats.errors.map((e) => [e.line, e.reason])).toEqual([
      [2, 'label "2" is not an integer in [0, 1]'],
      [3, 'expected 3 tab-separated columns (sentence_a, sentence_b, label), got 2'],
      [4, 'column 2 (sentence_b) is empty'],
      [5, 'label "yes" is not an integer in [0, 1]'],
      [6, 'expected 3 tab-separated columns (sentence_a, sentence_b, label), got 4'],
    ]);
    const scores = readSentencePairs(file, { maxLabel: 5, onMalformed: 'skip' });
    expect((await scores.toArray()).map((r) => r.label)).toEqual([1, 2, 0]);
  });

  it('summarization: column order per format and malformed lines', async () => {
    const file = fixture('summarization_bad.tsv');
    const csl = readSummarization(file, { format: 'csl', onMalformed: 'skip' });
    expect(await csl.toArray()).toEqual([
      { source: '摘要一的内容', target: '标题一', line: 1 },
      { source: '摘要五', target: '标题五', line: 5 },
    ]);
    expect(csl.stats.errors.map((e) => e.line)).toEqual([2, 3, 4]);
    const lcsts = await readSummarization(file, { format: 'lcsts', onMalformed: 'skip' }).toArray();
    expect(lcsts[0]).toEqual({ source: '摘要一的内容', target: '标题一', line: 1 });
    expect(await firstError(readSummarization(file, { format: 'lcsts' }))).toMatchObject({ line: 2 });
  });
});

describe('plain text', () => {
  it('splits by line or by paragraph', async () => {
    const file = fixture('paragraphs.txt');
    expect(await readTextCorpus(file).toArray()).toEqual([
      { text: '第一段第一行', line: 1 },
      { text: '第一段第二行', line: 2 },
      { text: '第二段', line: 5 },
      { text: '第三段', line: 7 },
    ]);
    expect(await readTextCorpus(file, { split: 'paragraph' }).toArray()).toEqual([
      { text: '第一段第一行\n第一段第二行', line: 1 },
      { text: '第二段', line: 5 },
      { text: '第三段', line: 7 },
    ]);
  });

  it('drops a paragraph with a line that is not UTF-8', async () => {
    const bad = tmpFile(Buffer.concat([Buffer.from('好的\n第二'), Buffer.from([0xe5, 0xa5]), Buffer.from('\n行\n\n最后\n')]));
    expect(await firstError(readTextCorpus(bad, { split: 'paragraph' }))).toMatchObject({ line: 2, reason: 'invalid UTF-8' });
    const stream = readTextCorpus(bad, { split: 'paragraph', onMalformed: 'skip' });
    expect(await stream.toArray()).toEqual([{ text: '最后', line: 5 }]);
    expect(stream.stats.skipped).toBe(1);
  });
});

describe('line reader edge cases', () => {
  it('reports invalid UTF-8 on the right line, in any chunking', async () => {
    const good = '{"text": "一二三"}\n';
    const bytes = Buffer.concat([Buffer.from(good.repeat(3)), Buffer.from([0x7b, 0xff, 0x7d, 0x0a]), Buffer.from(good.repeat(2))]);
    const file = tmpFile(bytes);
    for (const chunkBytes of [1, 5, 64, 1 << 16]) {
      expect(await firstError(readCluener(file, { chunkBytes }))).toMatchObject({ line: 4, reason: 'invalid UTF-8' });
      const s = readCluener(file, { chunkBytes, onMalformed: 'skip' });
      expect((await s.toArray()).map((r) => r.line)).toEqual([1, 2, 3, 5, 6]);
    }
  });

  it('drops an overlong line without buffering it, then goes on', async () => {
    const long = `{"text": "${'长'.repeat(400)}"}`;
    const file = tmpFile(`{"text": "甲"}\n${long}\n{"text": "乙"}`);
    for (const chunkBytes of [7, 1000, 1 << 16]) {
      const s = readCluener(file, { chunkBytes, maxLineBytes: 1024, onMalformed: 'skip' });
      expect((await s.toArray()).map((r) => [r.line, r.text])).toEqual([[1, '甲'], [3, '乙']]);
      expect(s.stats.errors[0]).toMatchObject({ line: 2, reason: 'line longer than 1024 bytes' });
    }
  });

  it('reads an empty file, a file without a final newline, and only blank lines', async () => {
    expect(await readCluener(tmpFile('')).toArray()).toEqual([]);
    expect((await readCluener(tmpFile('{"text": "甲"}')).toArray()).length).toBe(1);
    expect(await readCluener(tmpFile('\n\r\n  \n')).toArray()).toEqual([]);
  });

  it('can be read twice; stats describe the last pass', async () => {
    const s = readCluener(fixture('cluener_bad.jsonl'), { onMalformed: 'skip' });
    await s.toArray();
    const again = await s.toArray();
    expect(again.length).toBe(3);
    expect(s.stats.skipped).toBe(4);
  });

  it('raises E_IO for a missing file or a directory', async () => {
    const missing = path.join(tmp, 'nope.jsonl');
    const err = await expectCodeAsync(drain(readCluener(missing)), 'E_IO');
    expect(err).toBeInstanceOf(KexueIOError);
    expect(err.message).toContain(missing);
    await expectCodeAsync(readTextCorpus(tmp).toArray(), 'E_IO');
  });

  it('checks its options (E_ARG)', () => {
    expectCode(() => readCluener(''), 'E_ARG');
    expectCode(() => readCluener('x', { onMalformed: 'ignore' as 'skip' }), 'E_ARG');
    expectCode(() => readSummarization('x', { format: 'xsum' as 'csl' }), 'E_ARG');
    expectCode(() => readSentencePairs('x', { maxLabel: 0 }), 'E_ARG');
    expectCode(() => readTextCorpus('x', { split: 'page' as 'line' }), 'E_ARG');
  });
});
