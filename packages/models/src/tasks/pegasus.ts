/**
 * PEGASUS-style pseudo-summary pre-training of a T5 (ALGORITHMS.md §4.3): documents (plain text,
 * one a line, or the sources of a summarization TSV) are cut into sentence pieces, grouped, and
 * each group split by greedy LCS selection into a pseudo-summary target and the source left
 * (data/pegasus.ts, built lazily group by group); the T5 learns to write the target from the
 * source with teacher forcing. Its best checkpoint starts a summarization run: `kexue train
 * summarize init=RUN`.
 */
import { FormatError, tidy } from '@kexue/core-cuda';

import { Dataset, type Batch } from '../data/dataset.js';
import { pseudoSummaryPairs } from '../data/pegasus.js';
import { readSummarization } from '../data/summarization.js';
import { readTextCorpus } from '../data/text.js';
import type { T5ForConditionalGeneration } from '../t5/model.js';
import { T5PegasusTokenizer } from '../tokenizers/t5_pegasus.js';
import { choice, integer, pathKey, type ConfigOf } from './config.js';
import { demoFile } from './demo.js';
import { FROM_SCRATCH_LR, RUN_KEYS, optimKeys, trainKeys } from './sections.js';
import { buildT5, describeT5, encodePairs, pairTokens, seq2seqStep, summarizeArch, summarizeLoss, t5InitKeys, targetTokens, t5ModelKeys, vocabOf, type EncodedPair } from './summarize.js';
import { defineTask } from './task.js';

const FORMATS = ['text', 'csl', 'lcsts'] as const;

/** The config keys of `kexue train pegasus`. */
export const PEGASUS_KEYS = {
  data: {
    train: pathKey('file', demoFile('csl/train.tsv'), 'documents: the sources of a summarization TSV (csl, lcsts) or plain text, one document a line (default: the shipped CSL abstracts)'),
    dev: pathKey('file', demoFile('csl/dev.tsv'), "held-out documents, for the teacher-forced loss of their pseudo-summaries ('' = none)"),
    format: choice(FORMATS, 'csl', 'text: one document a line; csl, lcsts: the source column of those TSVs'),
    max_source: integer(384, 'source tokens, [CLS] and [SEP] included', { min: 3 }),
    max_target: integer(128, 'pseudo-summary tokens, [CLS] and [SEP] included', { min: 3 }),
  },
  model: t5ModelKeys(),
  ...t5InitKeys(),
  optim: optimKeys('constant', FROM_SCRATCH_LR),
  train: trainKeys({ batch: 16, epochs: 4, log: 20 }),
  ...RUN_KEYS,
};

/** The resolved config of a PEGASUS pre-training run. */
export type PegasusConfig = ConfigOf<typeof PEGASUS_KEYS> & { task: string };

/** The documents of a file: its lines (text), or the sources of a summarization TSV. */
async function* documents(file: string, format: (typeof FORMATS)[number]): AsyncGenerator<string> {
  if (format === 'text') {
    for await (const d of readTextCorpus(file)) yield d.text;
  } else {
    for await (const p of readSummarization(file, { format })) yield p.source;
  }
}

/** The pseudo-summary pairs of a file's documents, tokenised (E_FORMAT when it yields none). */
async function pseudoPairs(file: string, config: PegasusConfig, tokenizer: T5PegasusTokenizer): Promise<EncodedPair[]> {
  const pairs: { source: string; target: string }[] = [];
  for await (const p of pseudoSummaryPairs(documents(file, config.data.format))) pairs.push({ source: p.source, target: p.target });
  if (pairs.length === 0) throw new FormatError(`${file} holds no document long enough for a pseudo-summary (3 sentence pieces)`);
  return encodePairs(pairs, tokenizer, config.data.max_source, config.data.max_target);
}

/** The mean teacher-forced loss per target token over pairs (batches of 16). */
function devLoss(model: T5ForConditionalGeneration, pairs: readonly EncodedPair[], pad: number): number {
  const wasTraining = model.training;
  model.eval();
  try {
    let sum = 0;
    let tokens = 0;
    for (let i = 0; i < pairs.length; i += 16) {
      const chunk = pairs.slice(i, i + 16);
      const n = chunk.reduce((k, p) => k + p.targetIds.length - 1, 0);
      sum += tidy(() => summarizeLoss(model, chunk, pad).item()) * n;
      tokens += n;
    }
    return sum / tokens;
  } finally {
    model.train(wasTraining);
  }
}

/** PEGASUS-style pre-training: `kexue train pegasus`. */
export const pegasusTask = defineTask({
  name: 'pegasus',
  summary: 'PEGASUS-style pseudo-summary pre-training of a T5 (its best checkpoint starts a summarize run: init=RUN)',
  details: [
    'Each document is cut into sentence pieces (at most 32 characters, at newlines and 。), pieces are',
    'grouped up to 768 characters, and the pieces that best summarize the rest of their group (greedy',
    'longest-common-subsequence selection) become the target (ALGORITHMS.md §4.3).',
    '',
    'Examples:',
    '  kexue train pegasus --run-dir runs/pegasus',
    '  kexue train pegasus data.train=corpus.txt data.format=text data.dev=',
    '  kexue train summarize init=runs/pegasus',
  ],
  config: PEGASUS_KEYS,
  recipe: FROM_SCRATCH_LR,
  best: { metric: 'loss', higherIsBetter: false },
  async setup(config, run) {
    const tokenizer = T5PegasusTokenizer.fromVocab(vocabOf(config));
    const train = new Dataset(await pseudoPairs(config.data.train, config, tokenizer));
    const dev = config.data.dev ? await pseudoPairs(config.data.dev, config, tokenizer) : [];
    const model = buildT5(config, tokenizer, run);
    const c = model.config;
    return {
      model,
      data: train,
      ...seq2seqStep(model, tokenizer.padId, run.device, config.data),
      lossWeight: ({ records }: Batch<EncodedPair>) => targetTokens(records),
      tokens: pairTokens,
      ...(dev.length ? { evaluate: async () => ({ loss: devLoss(model, dev, tokenizer.padId) }) } : {}),
      arch: summarizeArch(c),
      files: { 'vocab.txt': vocabOf(config) },
      about: {
        model: describeT5(c, config.init),
        data: { train: train.length, dev: dev.length, unit: 'pseudo-summary pairs' },
        extra: '',
      },
    };
  },
  describeEval: (m) => `dev loss ${m.loss!.toFixed(4)} (pseudo-summaries, per target token)`,
  commands: {},
});
