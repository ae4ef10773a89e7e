/**
 * Builds a plain-text masked-LM corpus (one document a line) from the training splits of the
 * shared datasets: CLUENER, Resume and Weibo NER texts, STS-B sentences, CSL titles and abstracts,
 * LCSTS headlines and texts. Dev splits are left out so that no evaluation text is pretrained on.
 *
 * With `--sts`, the corpus of the STS table's encoder (docs/training.md, "A sentence encoder for
 * the STS table"): the sentences of every split of the five STS sets are added too, each distinct
 * sentence once, labels unused. That is unsupervised and transductive, as the whitening fit is
 * (ALGORITHMS.md §3.2 fits it on the evaluated sentences): no label is read.
 *
 *   pnpm tsx --conditions=source examples/mlm-corpus.ts ../shared/data runs/mlm-corpus.txt [--sts]
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { STS_SETS, readCluener, readResume, readSentencePairs, readSummarization, readWeibo } from '@kexue/models';

const [dataDir, outFile, flag] = process.argv.slice(2);
if (!dataDir || !outFile || (flag !== undefined && flag !== '--sts')) {
  console.error('usage: mlm-corpus.ts DATA_DIR OUT_FILE [--sts]');
  process.exit(2);
}
const at = (p: string) => join(dataDir, p);

/** Each distinct sentence of every split of the STS sets (the pairs repeat sentences often). */
async function stsSentences(): Promise<string[]> {
  const seen = new Set<string>();
  for (const set of STS_SETS) {
    for (const file of readdirSync(at(`sts/${set}`)).filter((f) => f.endsWith('.data')).sort()) {
      for await (const p of readSentencePairs(at(`sts/${set}/${file}`), { maxLabel: 5 })) seen.add(p.a).add(p.b);
    }
  }
  return [...seen];
}

const sources: [string, () => Promise<string[]>][] = [
  ['CLUENER train', async () => (await readCluener(at('ner/cluener/train.jsonl')).toArray()).map((r) => r.text)],
  ['Resume train', async () => (await readResume(at('ner/resume/train.char.bmes')).toArray()).map((r) => r.text)],
  ['Weibo train', async () => (await readWeibo(at('ner/weibo/train.conll')).toArray()).map((r) => r.text)],
  ['STS-B train', async () => (await readSentencePairs(at('sts/STS-B/STS-B.train.data'), { maxLabel: 5 }).toArray()).flatMap((p) => [p.a, p.b])],
  ['CSL train', async () => (await readSummarization(at('summarization/csl/train.tsv'), { format: 'csl' }).toArray()).flatMap((p) => [p.target, p.source])],
  ['LCSTS train', async () => (await readSummarization(at('summarization/lcsts/train.tsv'), { format: 'lcsts' }).toArray()).flatMap((p) => [p.target, p.source])],
  ...(flag === '--sts' ? [['STS sentences (all sets and splits, labels unused)', stsSentences] as [string, () => Promise<string[]>]] : []),
];

const lines: string[] = [];
for (const [name, read] of sources) {
  // A document is one line: line breaks inside a text would split it.
  const texts = (await read()).map((t) => t.replace(/\s+/g, ' ').trim()).filter((t) => t.length > 0);
  console.log(`${name}: ${texts.length} texts, ${texts.reduce((n, t) => n + [...t].length, 0)} characters`);
  lines.push(...texts);
}
mkdirSync(dirname(outFile), { recursive: true });
writeFileSync(outFile, lines.join('\n') + '\n');
console.log(`${lines.length} documents written to ${outFile}`);
