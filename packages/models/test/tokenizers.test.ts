/**
 * Tokenizer units: BERT's normalization corners (against @huggingface/tokenizers where it follows
 * the Rust implementation, by hand where it does not), special tokens, offsets, pairs,
 * truncation, padding, batches, decode, the span helpers, the T5 PEGASUS corner cases of the
 * Python fixture, and the errors.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Tokenizer } from '@huggingface/tokenizers';
import {
  BertTokenizer, T5PegasusTokenizer, TokenSpanMapper, Vocab,
} from '@kexue/models';
import { expectCode } from '../../core-cuda/test/helpers.js';
import { bertVocab, fixtures, hfTokenizerJson, t5Vocab } from './tokenizers.helpers.js';

const bert = BertTokenizer.fromVocab(bertVocab);
const ref = new Tokenizer(hfTokenizerJson(bertVocab, true), {});

describe('BertTokenizer', () => {
  it('agrees with @huggingface/tokenizers on normalization corners', () => {
    const texts = [
      'Héllo WÖRLD, café Ångström naïve',
      'a\u0000b\u200bc\ufffdd\te\u3000f\u00a0g\r\nh',
      '你好，世界！(test) 「引号」…… ——破折号',
      '价格是123.45元，增长了3.5%。English words don\'t break; it\'s fine.',
      'unaffable UNAFFABLE running jumped',
      'ﬁnance ①②③ ＡＢＣ１２３ ｈｅｌｌｏ',
      '今天心情🙂很好😀！',
      '[CLS]特殊[SEP]符号[MASK] [cls] [UNK][PAD]',
      'x'.repeat(100) + ' ' + 'x'.repeat(101),
      '   ',
      '',
    ];
    for (const text of texts) {
      const ours = bert.encode(text);
      const theirs = ref.encode(text);
      expect(ours.tokens, JSON.stringify(text)).toEqual(theirs.tokens);
      expect(ours.ids, JSON.stringify(text)).toEqual(theirs.ids);
    }
  });

  it('follows the Rust BertNormalizer where Tokenizers.js does not', () => {
    // Supplementary-plane CJK ideographs are words of their own (Tokenizers.js looks at UTF-16 units).
    expect(bert.tokenize('a\u{20000}b')).toEqual(['a', '[UNK]', 'b']);
    // Unassigned code points (Cn) are dropped by clean_text like other "other" characters.
    expect(bert.tokenize('ab\u0378cd')).toEqual(bert.tokenize('abcd'));
    // Lowercasing is per character: no final-sigma rule (ΣΑΣ → σασ, not σας).
    expect(bert.tokenize('ΣΑΣ')).toEqual(['σ', '##α', '##σ']);
  });

  it('keeps case and accents when asked, and strips accents separately', () => {
    const cased = BertTokenizer.fromVocab(bertVocab, { lowercase: false });
    expect(cased.tokenize('Hello hello')).toEqual(['[UNK]', 'hello']);
    expect(cased.tokenize('café')).not.toEqual(bert.tokenize('café')); // é kept: not the vocabulary's 'cafe' pieces
    const strip = BertTokenizer.fromVocab(bertVocab, { lowercase: false, stripAccents: true });
    expect(strip.tokenize('cafe')).toEqual(strip.tokenize('café'));
    expect(cased.stripAccents).toBe(false);
    expect(bert.lowercase).toBe(true);
  });

  it('gives offsets in the original text, [0, 0] for [CLS]/[SEP], spans for special tokens in the text', () => {
    const text = 'Héllo, 北京[MASK]unaffable';
    const enc = bert.encode(text);
    expect(enc.tokens).toEqual(['[CLS]', 'hello', ',', '北', '京', '[MASK]', 'u', '##na', '##ff', '##able', '[SEP]']);
    expect(enc.offsets).toEqual([[0, 0], [0, 5], [5, 6], [7, 8], [8, 9], [9, 15], [15, 16], [16, 18], [18, 20], [20, 24], [0, 0]]);
    expect(enc.segmentIds.every((s) => s === 0)).toBe(true);
    expect(enc.attentionMask.every((m) => m === 1)).toBe(true);
    // UTF-16 units: an emoji is two.
    const emoji = bert.encode('😀 a');
    expect(emoji.offsets.slice(1, -1)).toEqual([[0, 2], [3, 4]]);
    // An [UNK] word covers the whole word.
    expect(bert.encode('x'.repeat(101)).offsets[1]).toEqual([0, 101]);
  });

  it('encodes pairs with segment ids and truncates longest-first as HF does', () => {
    const a = '一二三四五六七八九十'; // 10 tokens
    const b = '甲乙丙丁'; // 4 tokens
    const p = bert.encode(a, { pair: b });
    expect(p.tokens).toEqual(['[CLS]', ...a, '[SEP]', ...b, '[SEP]']);
    expect(p.segmentIds).toEqual([...Array(12).fill(0), ...Array(5).fill(1)]);
    expect(p.offsets[12]).toEqual([0, 1]); // the pair's offsets index the pair
    // budget 9: the shorter (4) fits in half → kept, the longer gets 5.
    const t = bert.encode(a, { pair: b, maxLength: 12 });
    expect(t.tokens).toEqual(['[CLS]', ...'一二三四五', '[SEP]', ...b, '[SEP]']);
    // Equal lengths, odd budget 7: first 3, second 4.
    const e = bert.encode('一二三四五六', { pair: '甲乙丙丁戊己', maxLength: 10 });
    expect(e.tokens).toEqual(['[CLS]', ...'一二三', '[SEP]', ...'甲乙丙丁', '[SEP]']);
    // Longer first, budget 7: the longer still gets the larger half.
    const f = bert.encode('一二三四五六七', { pair: '甲乙丙丁戊己', maxLength: 10 });
    expect(f.tokens).toEqual(['[CLS]', ...'一二三四', '[SEP]', ...'甲乙丙', '[SEP]']);
    expect(bert.encode(a, { pair: b, maxLength: 12, truncation: 'only_first' }).tokens.length).toBe(12);
    expect(bert.encode(a, { pair: b, maxLength: 14, truncation: 'only_second' }).tokens).toEqual(['[CLS]', ...a, '[SEP]', '甲', '[SEP]']);
    expectCode(() => bert.encode(a, { pair: b, maxLength: 12, truncation: 'only_second' }), 'E_ARG');
  });

  it('truncates single texts before the final [SEP] and pads on the right', () => {
    const enc = bert.encode('一二三四五', { maxLength: 4 });
    expect(enc.tokens).toEqual(['[CLS]', '一', '二', '[SEP]']);
    const padded = bert.encode('一二', { maxLength: 6, padding: true });
    expect(padded.tokens).toEqual(['[CLS]', '一', '二', '[SEP]', '[PAD]', '[PAD]']);
    expect(padded.ids.slice(4)).toEqual([0, 0]);
    expect(padded.attentionMask).toEqual([1, 1, 1, 1, 0, 0]);
    expect(padded.offsets.slice(4)).toEqual([[0, 0], [0, 0]]);
    const untruncated = bert.encode('一二三四五', { maxLength: 4, truncation: false });
    expect(untruncated.tokens.length).toBe(7);
    expect(bert.encode('一二', { addSpecialTokens: false }).tokens).toEqual(['一', '二']);
  });

  it('encodes batches padded to the longest or to maxLength', () => {
    const batch = bert.encodeBatch(['一二三', ['甲', '乙丙']], { padding: 'longest' });
    expect(batch.map((e) => e.ids.length)).toEqual([6, 6]);
    expect(batch[0]!.attentionMask).toEqual([1, 1, 1, 1, 1, 0]);
    expect(batch[1]!.segmentIds).toEqual([0, 0, 0, 1, 1, 1]);
    const fixed = bert.encodeBatch(['一二三四五六', '一'], { maxLength: 5, padding: 'max_length' });
    expect(fixed.map((e) => e.tokens.length)).toEqual([5, 5]);
  });

  it('decodes as bert4keras does', () => {
    expect(bert.decode(bert.encode('北京欢迎你，hello world！unaffable 3.5%').ids)).toBe('北京欢迎你，hello world！unaffable 3.5%');
    expect(bert.decode([101, 102, 0])).toBe('');
  });

  it('reports errors with typed codes', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kexue-vocab-'));
    const write = (name: string, content: string | Buffer) => {
      const f = path.join(dir, name);
      writeFileSync(f, content);
      return f;
    };
    expectCode(() => BertTokenizer.fromVocab(path.join(dir, 'missing.txt')), 'E_IO');
    expectCode(() => BertTokenizer.fromVocab(dir), 'E_IO'); // a directory
    expectCode(() => BertTokenizer.fromVocab(write('dup.txt', '[PAD]\n[UNK]\n[CLS]\n[SEP]\na\na\n')), 'E_FORMAT');
    expectCode(() => BertTokenizer.fromVocab(write('nounk.txt', '[PAD]\n[CLS]\n[SEP]\na\n')), 'E_FORMAT');
    expectCode(() => BertTokenizer.fromVocab(write('blank.txt', '[PAD]\n[UNK]\n\n[CLS]\n[SEP]\n')), 'E_FORMAT');
    expectCode(() => BertTokenizer.fromVocab(write('latin1.txt', Buffer.from([0x5b, 0x50, 0x41, 0x44, 0x5d, 0x0a, 0xe9, 0x0a]))), 'E_FORMAT');
    expectCode(() => T5PegasusTokenizer.fromVocab(write('dup2.txt', '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[UNK]\n')), 'E_FORMAT');
    expectCode(() => T5PegasusTokenizer.fromVocab(path.join(dir, 'nope.txt')), 'E_IO');
    // A well-formed small vocabulary with CRLF line ends and a BOM loads.
    const small = BertTokenizer.fromVocab(write('ok.txt', '\ufeff[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n一\r\n'));
    expect(small.vocabSize).toBe(5);
    expect(small.encode('一二').ids).toEqual([2, 4, 1, 3]);
    // Bad options and arguments.
    expectCode(() => BertTokenizer.fromVocab(bertVocab, { lowercase: 'yes' as unknown as boolean }), 'E_ARG');
    expectCode(() => BertTokenizer.fromVocab(bertVocab, { lowercased: true } as never), 'E_ARG');
    expectCode(() => BertTokenizer.fromVocab(bertVocab, { maxInputCharsPerWord: 0 }), 'E_ARG');
    expectCode(() => T5PegasusTokenizer.fromVocab(t5Vocab, { wordMaxLength: -1 }), 'E_ARG');
    expectCode(() => bert.encode(42 as unknown as string), 'E_ARG');
    expectCode(() => bert.encode('a', { pair: 7 as unknown as string }), 'E_ARG');
    expectCode(() => bert.encode('a', { maxLen: 5 } as never), 'E_ARG');
    expectCode(() => bert.encode('a', { maxLength: 0 }), 'E_ARG');
    expectCode(() => bert.encode('a', { maxLength: 1 }), 'E_ARG'); // shorter than [CLS] [SEP]
    expectCode(() => bert.encode('a', { padding: true }), 'E_ARG'); // no maxLength
    expectCode(() => bert.encode('a', { truncation: true }), 'E_ARG');
    expectCode(() => bert.encode('a', { truncation: 'sideways' as never, maxLength: 5 }), 'E_ARG');
    expectCode(() => bert.encodeBatch(['a', 3 as unknown as string]), 'E_ARG');
    expectCode(() => bert.decode([bert.vocabSize]), 'E_ARG');
    expectCode(() => bert.decode([1.5]), 'E_ARG');
    expectCode(() => Vocab.fromTokens(['[PAD]', '[UNK]', '[CLS]']), 'E_FORMAT');
  });
});

describe('span helpers', () => {
  const text = '我爱 Beijing 天安门';
  const enc = bert.encode(text);
  it('maps characters to tokens and back', () => {
    expect(enc.tokens).toEqual(['[CLS]', '我', '爱', 'be', '##i', '##jing', '天', '安', '门', '[SEP]']);
    expect(enc.offsets.slice(3, 6)).toEqual([[3, 5], [5, 6], [6, 10]]);
    // The tokenizer's offsets feed the one span mapper (data/spans.ts).
    const map = new TokenSpanMapper(enc.offsets);
    expect(map.toTokens(0, 1)).toEqual([1, 1]);
    expect(map.toTokens(2, 3)).toBeUndefined(); // the space
    expect(map.toTokens(7, 8)).toEqual([5, 5]);
    expect(map.toTokens(3, 10)).toEqual([3, 5]); // "Beijing"
    expect(map.toTokens(11, 14)).toEqual([6, 8]);
    expect(map.toChars(3, 5)).toEqual([3, 10]);
    expect(map.toChars(0, 1)).toEqual([0, 1]); // [CLS] skipped
    expect(map.toChars(9, 9)).toBeUndefined();
    expectCode(() => map.toTokens(5, 2), 'E_ARG');
    expectCode(() => map.toChars(0, 99), 'E_ARG');
  });
});

describe('T5PegasusTokenizer corner cases against the Python path', () => {
  const fx = JSON.parse(gunzipSync(readFileSync(path.join(fixtures, 't5_pegasus_python.json.gz'))).toString()) as {
    edge: { text: string; seg: number[]; ids: number[]; decoded: string }[];
  };
  const t5 = T5PegasusTokenizer.fromVocab(t5Vocab);

  it('segments, encodes and decodes the hand-made texts like Python', () => {
    expect(fx.edge.length).toBeGreaterThan(10);
    for (const e of fx.edge) {
      const label = JSON.stringify(e.text.slice(0, 40));
      expect(t5.segment(e.text).map((w) => [...w].length), label).toEqual(e.seg);
      const enc = t5.encode(e.text);
      expect(enc.ids, label).toEqual(e.ids);
      expect(enc.tokens.every((tok, i) => t5.idToToken(enc.ids[i]!) === tok)).toBe(true);
      expect(t5.decode(enc.ids), label).toBe(e.decoded);
    }
  });

  it('falls back per character inside a word, as bert4keras does (BERT makes the whole word [UNK])', () => {
    // jieba never hands such a word over on real text, so a whole-text segmenter stands in for it.
    const vocab = Vocab.fromTokens(['[PAD]', '[UNK]', '[CLS]', '[SEP]', 'a', '##b', '##c']);
    const t5 = new T5PegasusTokenizer(vocab, { segmenter: { cut: (s: string) => [s] } });
    const enc = t5.encode('ab☃c');
    expect(enc.tokens).toEqual(['[CLS]', 'a', '##b', '[UNK]', '##c', '[SEP]']);
    expect(enc.offsets.slice(1, -1)).toEqual([[0, 1], [1, 2], [2, 3], [3, 4]]);
    expect(new BertTokenizer(vocab).tokenize('ab☃c')).toEqual(['[UNK]']);
    // Words over wordMaxLength are kept whole: [UNK] unless the vocabulary has them.
    expect(new T5PegasusTokenizer(vocab, { segmenter: { cut: (s: string) => [s] }, wordMaxLength: 2 }).tokenize('abc')).toEqual(['[UNK]']);
  });

  it('keeps vocabulary words whole and maps them to their spans', () => {
    const text = '李嘉诚回应“撤资”';
    const enc = t5.encode(text);
    expect(enc.tokens).toEqual(['[CLS]', '李嘉诚', '回应', '“', '撤', '资', '”', '[SEP]']);
    expect(enc.offsets).toEqual([[0, 0], [0, 3], [3, 5], [5, 6], [6, 7], [7, 8], [8, 9], [0, 0]]);
    // Accents stripped, the span still covers the original characters.
    const cafe = t5.encode('Café');
    expect(cafe.offsets.slice(1, -1).at(-1)![1]).toBe(4);
    expect(t5.encode('一二三四五六', { maxLength: 5 }).tokens.at(-1)).toBe('[SEP]');
    expect(t5.encode('一二三四五六', { maxLength: 5 }).ids.length).toBe(5);
  });
});
