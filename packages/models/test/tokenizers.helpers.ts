/** Shared by the tokenizer tests: where the data and vocabularies are, and the texts to check. */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
/** ../shared/data beside the clone (CI lays it there). */
export const dataRoot = path.resolve(repoRoot, '../shared/data');
export const hasData = existsSync(path.join(dataRoot, 'summarization'));
export const bertVocab = path.join(repoRoot, 'packages/models/vocab/bert-base-chinese/vocab.txt');
export const t5Vocab = path.join(repoRoot, 'packages/models/vocab/t5_pegasus_base/vocab.txt');
export const fixtures = path.join(repoRoot, 'packages/models/test/fixtures');

/** Lines of a UTF-8 file split on '\n', a final empty line dropped (as tools/golden/fx_jieba.py). */
export function lines(file: string): string[] {
  const out = readFileSync(path.join(dataRoot, file), 'utf8').split('\n');
  if (out.length > 0 && out[out.length - 1] === '') out.pop();
  return out;
}

/** Every field of every line of a tab-separated file. */
export function tsvFields(file: string): string[] {
  return lines(file).flatMap((l) => l.split('\t'));
}

/** The texts of the summarization sets, in fx_jieba.py's order. */
export const SUMMARIZATION_FILES = [
  'summarization/csl/train.tsv',
  'summarization/csl/dev.tsv',
  'summarization/lcsts/train.tsv',
  'summarization/lcsts/dev.tsv',
];

/** Every text of CLUENER, CSL, LCSTS and the STS sets, by data set. */
export function allTexts(): Record<string, string[]> {
  const sets: Record<string, string[]> = {};
  sets.cluener = ['ner/cluener/train.jsonl', 'ner/cluener/dev.jsonl'].flatMap((f) =>
    lines(f).map((l) => (JSON.parse(l) as { text: string }).text),
  );
  sets.csl = SUMMARIZATION_FILES.slice(0, 2).flatMap(tsvFields);
  sets.lcsts = SUMMARIZATION_FILES.slice(2).flatMap(tsvFields);
  for (const name of readdirSync(path.join(dataRoot, 'sts')).sort()) {
    const dir = path.join('sts', name);
    sets[`sts/${name}`] = readdirSync(path.join(dataRoot, dir))
      .sort()
      .flatMap((f) => lines(path.join(dir, f)).flatMap((l) => l.split('\t').slice(0, 2)));
  }
  return sets;
}

/** FNV-1a 32 over uint32 values (little-endian bytes), as fx_jieba.py. */
export function fnv1a(values: Iterable<number>): number {
  let h = 0x811c9dc5;
  for (const v of values) {
    for (let s = 0; s < 32; s += 8) {
      h ^= (v >>> s) & 0xff;
      h = Math.imul(h, 0x01000193) >>> 0;
    }
  }
  return h >>> 0;
}

/**
 * The independent reference: @huggingface/tokenizers (Tokenizers.js) loading a tokenizer.json
 * with BertNormalizer, BertPreTokenizer and WordPiece built from the same vocab.txt, the
 * special tokens as unnormalized added tokens (as in HF's bert-base-chinese tokenizer.json).
 */
export function hfTokenizerJson(vocabFile: string, lowercase: boolean): Record<string, unknown> {
  const tokens = readFileSync(vocabFile, 'utf8').split('\n');
  if (tokens[tokens.length - 1] === '') tokens.pop();
  const vocab = Object.fromEntries(tokens.map((t, i) => [t, i]));
  const added = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].map((t) => ({
    id: vocab[t], content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  }));
  const cls = { SpecialToken: { id: '[CLS]', type_id: 0 } };
  const sep = (type_id: number) => ({ SpecialToken: { id: '[SEP]', type_id } });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [cls, { Sequence: { id: 'A', type_id: 0 } }, sep(0)],
      pair: [cls, { Sequence: { id: 'A', type_id: 0 } }, sep(0), { Sequence: { id: 'B', type_id: 1 } }, sep(1)],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [vocab['[CLS]']], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [vocab['[SEP]']], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
}
