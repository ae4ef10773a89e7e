/**
 * Streaming: memory stays bounded on a generated 50 MB file, record counts scale on large files,
 * and reading speed (MB/s) per format is printed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, describe, expect, it } from 'vitest';

import {
  readCluener,
  readResume,
  readSentencePairs,
  readSummarization,
  readTextCorpus,
  readWeibo,
  type RecordStream,
} from '@kexue/models';

import { data } from './data-helpers.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kexue-stream-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Writes `copies` concatenated copies of a data file (streamed, not held in memory). */
function repeated(rel: string, copies: number): string {
  const src = fs.readFileSync(data(rel));
  const file = path.join(tmp, `${path.basename(rel)}.x${copies}`);
  const fd = fs.openSync(file, 'w');
  for (let i = 0; i < copies; i++) fs.writeSync(fd, src);
  fs.closeSync(fd);
  return file;
}

const used = () => {
  const m = process.memoryUsage();
  return m.heapUsed + m.external + m.arrayBuffers;
};

async function timed<T>(stream: RecordStream<T>) {
  const t0 = performance.now();
  let n = 0;
  for await (const _ of stream) n++;
  const s = (performance.now() - t0) / 1000;
  return { n, mbs: stream.stats.bytes / 1e6 / s };
}

describe('streaming', () => {
  it('reads a 50 MB CLUENER file with bounded memory', async () => {
    const copies = 25;
    const file = repeated('ner/cluener/train.jsonl', copies);
    const size = fs.statSync(file).size;
    expect(size).toBeGreaterThan(50e6);
    gc();
    const base = used();
    let peak = 0;
    let n = 0;
    const t0 = performance.now();
    for await (const r of readCluener(file)) {
      if (++n % 20000 === 0) {
        gc();
        peak = Math.max(peak, used() - base);
      }
      void r;
    }
    const s = (performance.now() - t0) / 1000;
    gc();
    peak = Math.max(peak, used() - base);
    expect(n).toBe(9748 * copies);
    console.log(`CLUENER ${(size / 1e6).toFixed(1)} MB: ${(size / 1e6 / s).toFixed(1)} MB/s, heap+external growth ${(peak / 1e6).toFixed(2)} MB`);
    expect(peak).toBeLessThan(8e6);
  });

  it('reads each format at a measured speed, counts scaling with the copies', async () => {
    const cases: Array<[string, number, number, (f: string) => RecordStream<unknown>]> = [
      ['ner/resume/train.char.bmes', 8, 3821, (f) => readResume(f)],
      ['ner/weibo/train.conll', 16, 1350, (f) => readWeibo(f)],
      ['sts/ATEC/ATEC.valid.data', 5, 20000, (f) => readSentencePairs(f)],
      ['summarization/csl/train.tsv', 5, 2800, (f) => readSummarization(f, { format: 'csl' })],
      ['summarization/lcsts/train.tsv', 3, 8666, (f) => readSummarization(f, { format: 'lcsts' })],
      ['summarization/lcsts/train.tsv', 3, 8666, (f) => readTextCorpus(f)],
    ];
    const report: string[] = [];
    for (const [rel, copies, n, read] of cases) {
      const file = repeated(rel, copies);
      const r = await timed(read(file));
      expect(r.n).toBe(n * copies);
      report.push(`${rel} ×${copies}: ${r.mbs.toFixed(1)} MB/s`);
      fs.rmSync(file);
    }
    console.log(report.join('\n'));
  });
});
