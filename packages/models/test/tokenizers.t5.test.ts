/**
 * T5PegasusTokenizer against the Python path (jieba 0.42.1 + bert4keras), through the fixture
 * tools/golden/fx_jieba.py writes: per-text hashes of jieba's segmentation and of the ids for all
 * CSL and LCSTS texts, and every 40th text in full (segmentation, ids, decode).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { T5PegasusTokenizer } from '@kexue/models';
import { SUMMARIZATION_FILES, fixtures, fnv1a, hasData, t5Vocab, tsvFields } from './tokenizers.helpers.js';

interface Fixture {
  reference: string;
  files: { path: string; texts: number }[];
  seg_hash: number[];
  ids_hash: number[];
  sample: { index: number; seg: number[]; ids: number[]; decoded: string }[];
}

const fx = JSON.parse(gunzipSync(readFileSync(path.join(fixtures, 't5_pegasus_python.json.gz'))).toString()) as Fixture;

/** Python's lowercase_and_normalize, for checking spans. */
const pyNormalize = (s: string) => s.toLowerCase().normalize('NFD').replace(/\p{Mn}/gu, '');

describe('T5PegasusTokenizer against Python jieba 0.42.1 + bert4keras', () => {
  const tok = T5PegasusTokenizer.fromVocab(t5Vocab);

  it('finds the data the fixture was made from', () => {
    expect(hasData).toBe(true);
    expect(fx.files.map((f) => f.path)).toEqual(SUMMARIZATION_FILES);
    for (const f of fx.files) expect(tsvFields(f.path).length, f.path).toBe(f.texts);
  });

  const texts = hasData ? SUMMARIZATION_FILES.flatMap(tsvFields) : [];

  it('segments like Python jieba and gives the Python ids on ≥ 99.5% of CSL and LCSTS texts', () => {
    let seg = 0;
    let ids = 0;
    const t0 = performance.now();
    texts.forEach((text, i) => {
      const words = tok.segment(text);
      if (fnv1a(words.map((w) => [...w].length)) === fx.seg_hash[i]) seg++;
      if (fnv1a(tok.encode(text).ids) === fx.ids_hash[i]) ids++;
    });
    const n = texts.length;
    console.log(
      `[tokenizers] T5 PEGASUS on ${n} CSL+LCSTS texts: jieba segmentation identical ${seg} (${((100 * seg) / n).toFixed(2)}%), ` +
        `ids identical ${ids} (${((100 * ids) / n).toFixed(2)}%), ${(performance.now() - t0).toFixed(0)} ms`,
    );
    expect(n).toBe(fx.ids_hash.length);
    expect(seg / n).toBeGreaterThanOrEqual(0.995);
    expect(ids / n).toBeGreaterThanOrEqual(0.995);
  });

  it('matches the sampled texts in full: segmentation, ids, decode and offsets', () => {
    for (const s of fx.sample) {
      const text = texts[s.index]!;
      expect(tok.segment(text).map((w) => [...w].length), `text ${s.index}`).toEqual(s.seg);
      const enc = tok.encode(text);
      expect(enc.ids, `text ${s.index}`).toEqual(s.ids);
      expect(tok.decode(enc.ids)).toBe(s.decoded);
      // Every token maps back to a span that normalizes to it.
      let prev = 0;
      for (let t = 1; t < enc.ids.length - 1; t++) {
        const [a, b] = enc.offsets[t]!;
        expect(a).toBeGreaterThanOrEqual(prev);
        expect(b).toBeGreaterThan(a);
        prev = b;
        if (enc.tokens[t] !== '[UNK]') expect(pyNormalize(text.slice(a, b)).replace(/\s/g, '')).toBe(enc.tokens[t]!.replace(/^##/, ''));
      }
      expect(enc.offsets[0]).toEqual([0, 0]);
      expect(enc.offsets[enc.offsets.length - 1]).toEqual([0, 0]);
    }
  });
});
