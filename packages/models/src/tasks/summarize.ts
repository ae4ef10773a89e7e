/**
 * The summarization task (T5 PEGASUS's fine-tuning, ALGORITHMS.md §4.4): (source, target) TSV
 * pairs (CSL abstract → title, LCSTS text → headline) → the T5 PEGASUS tokenizer → an mT5 v1.1
 * encoder–decoder, trained from scratch or from a T5 checkpoint directory (the published T5
 * PEGASUS weights: `init=DIR`) with teacher forcing → dev ROUGE-1/2/L and BLEU of its generated
 * titles, beside the lead baseline (`kexue train|eval|predict summarize`, Summarizer).
 *
 * As bert4keras trains T5 PEGASUS, a target is `[CLS] title [SEP]`: the decoder starts from
 * [CLS] and a generated title ends at [SEP].
 */
import { existsSync } from 'node:fs';
import path from 'node:path';

import { FormatError, resolveDevice, tensor, tidy, type Tensor } from '@kexue/core-cuda';

import { Dataset, type Batch } from '../data/dataset.js';
import { readSummarization, type SummarizationFormat, type SummarizationPair } from '../data/summarization.js';
import { readTextCorpus } from '../data/text.js';
import { generate, generateStream, type GenerateOptions } from '../generate/generate.js';
import { SummaryMetrics, leadBaseline, type SummaryScores } from '../metrics/summary.js';
import { T5ForConditionalGeneration, seq2seqLoss } from '../t5/model.js';
import { t5Config, type T5Config } from '../t5/config.js';
import { resolveT5Pretrained } from '../t5/pretrained.js';
import { BUNDLED_VOCABS } from '../tokenizers/bundled.js';
import { T5PegasusTokenizer } from '../tokenizers/t5_pegasus.js';
import { buildFromCheckpoint, checkArchitecture, checkpointDir, openRunCheckpoint, MODEL_FILE, readModelHeader, type Architecture } from '../train/checkpoint.js';
import { paddedLength } from '../train/compiled_step.js';
import { INDEX_FILE } from '../train/run_dir.js';
import { RequestError, choice, integer, number, pathKey, type ConfigOf } from './config.js';
import { demoFile } from './demo.js';
import { FROM_SCRATCH_LR, RUN_KEYS, optimKeys, trainKeys } from './sections.js';
import { RUN_DIR_OPTIONS, defineTask, evalDataOptions, type RunContext } from './task.js';

const FORMATS = ['csl', 'lcsts'] as const;

/** `model.*` of the T5 tasks: a T5 trained from scratch (init replaces the sizes). */
export function t5ModelKeys() {
  return {
    d_model: integer(128, 'model width (d_model)', { min: 2 }),
    d_kv: integer(32, 'size of each attention head', { min: 1 }),
    heads: integer(4, 'attention heads', { min: 1 }),
    d_ff: integer(256, 'gated feed-forward size (each of wi_0, wi_1)', { min: 1 }),
    layers: integer(2, 'encoder layers', { min: 1 }),
    decoder_layers: integer(2, 'decoder layers', { min: 1 }),
    dropout: number(0.1, 'dropout rate', { min: 0, max: 0.99 }),
    vocab: pathKey('file', '', "vocab.txt ('' = the bundled T5 PEGASUS vocabulary)"),
  };
}

/** `init` and `variant` of the T5 tasks: where the weights start. */
export function t5InitKeys() {
  return {
    init: pathKey(
      'dir',
      '',
      "where the weights start ('' = from scratch): a run directory (summarize or pegasus: its best checkpoint), or a T5 checkpoint directory (config.json + pytorch_model.bin or model.safetensors: the published T5 PEGASUS weights); either replaces model.*'s sizes",
    ),
    variant: choice(['t5-pegasus', 'hf'], 't5-pegasus', "how a T5 checkpoint directory's weights run: t5-pegasus (bert4keras: cross-attention position bias, logit scale) or hf (transformers' mT5)"),
  };
}

/** The config keys of `kexue train summarize`. */
export const SUMMARIZE_KEYS = {
  data: {
    train: pathKey('file', demoFile('csl/train.tsv'), 'training pairs (default: the shipped CSL sample, abstract → title)'),
    dev: pathKey('file', demoFile('csl/dev.tsv'), "dev pairs, scored with ROUGE and BLEU of generated targets ('' = none)"),
    format: choice(FORMATS, 'csl', 'csl: title<TAB>abstract lines; lcsts: summary<TAB>text lines'),
    max_source: integer(256, 'source tokens, [CLS] and [SEP] included (longer sources are cut)', { min: 3 }),
    max_target: integer(32, 'target tokens, [CLS] and [SEP] included; also the longest generated target', { min: 3 }),
    dev_limit: integer(0, 'score the first N dev pairs at each evaluation (0 = all)', { min: 0 }),
  },
  model: t5ModelKeys(),
  ...t5InitKeys(),
  decode: {
    beams: integer(1, 'beams of the beam search that generates dev and predicted targets (1: greedy)', { min: 1 }),
    min_tokens: integer(1, 'tokens generated before [SEP] may end a target', { min: 0 }),
  },
  optim: optimKeys('constant', FROM_SCRATCH_LR),
  train: trainKeys({ batch: 16, epochs: 6, log: 20 }),
  ...RUN_KEYS,
};

/** The resolved config of a summarization run (RUN/config.json). */
export type SummarizeConfig = ConfigOf<typeof SUMMARIZE_KEYS> & { task: string };

/** A pair ready for the model: source ids and the target's [CLS] … [SEP] ids. */
export interface EncodedPair {
  source: string;
  target: string;
  sourceIds: number[];
  targetIds: number[];
}

/** Reads a summarization TSV (E_FORMAT when it holds no pairs). */
export async function readPairs(file: string, format: SummarizationFormat): Promise<SummarizationPair[]> {
  const pairs = await readSummarization(file, { format }).toArray();
  if (pairs.length === 0) throw new FormatError(`${file} holds no pairs`);
  return pairs;
}

/** Tokenises pairs (sources and targets cut to their lengths, [CLS] and [SEP] kept). */
export function encodePairs(pairs: ReadonlyArray<{ source: string; target: string }>, tokenizer: T5PegasusTokenizer, maxSource: number, maxTarget: number): EncodedPair[] {
  return pairs.map((p) => ({
    source: p.source,
    target: p.target,
    sourceIds: tokenizer.encode(p.source, { maxLength: maxSource }).ids,
    targetIds: tokenizer.encode(p.target, { maxLength: maxTarget }).ids,
  }));
}

/** Padded int32 ids [B, n] and their uint8 mask on a device (call inside tidy); n is the longest row, or rounded up as `padding` says. */
function padded(rows: readonly number[][], pad: number, device: string, padding: Padding = NO_PADDING): { ids: Tensor; mask: Tensor } {
  const B = rows.length;
  const n = paddedLength(Math.max(1, ...rows.map((r) => r.length)), padding.multiple, padding.maxLength);
  const ids = new Int32Array(B * n).fill(pad);
  const mask = new Uint8Array(B * n);
  rows.forEach((r, b) => r.forEach((id, t) => ((ids[b * n + t] = id), (mask[b * n + t] = 1))));
  return { ids: tensor(ids, [B, n], { dtype: 'int32', device }), mask: tensor(mask, [B, n], { dtype: 'uint8', device }) };
}

/** The target tokens a batch's summarizeLoss is a mean over (each target but its first token). */
export function targetTokens(pairs: readonly EncodedPair[]): number {
  return pairs.reduce((n, p) => n + p.targetIds.length - 1, 0);
}

/** How a batch's lengths are padded: up to a multiple (1: the longest row), at most a maximum length. */
interface Padding {
  multiple: number;
  maxLength: number;
}
const NO_PADDING: Padding = { multiple: 1, maxLength: Number.POSITIVE_INFINITY };

/** A teacher-forced batch's tensors (the training step's inputs). */
export type Seq2seqInputs = {
  sourceIds: Tensor;
  sourceMask: Tensor;
  /** The decoder reads target[:-1]. */
  decoderIds: Tensor;
  decoderMask: Tensor;
  /** int32 [B, T]: target[1:], -100 at padding (ignored). */
  labels: Tensor;
};

/**
 * The tensors of a teacher-forced batch on a device: source and decoder lengths are the longest, or
 * rounded up to a multiple of `padding.multiple` (at most the task's max_source and max_target).
 */
export function seq2seqInputs(pairs: readonly EncodedPair[], pad: number, device: string, padding: { multiple: number; maxSource: number; maxTarget: number }): Seq2seqInputs {
  const src = padded(pairs.map((p) => p.sourceIds), pad, device, { multiple: padding.multiple, maxLength: padding.maxSource });
  const dec = padded(pairs.map((p) => p.targetIds.slice(0, -1)), pad, device, { multiple: padding.multiple, maxLength: padding.maxTarget - 1 });
  const T = dec.ids.shape[1]!;
  const labels = new Int32Array(pairs.length * T).fill(-100);
  pairs.forEach((p, b) => p.targetIds.slice(1).forEach((id, t) => (labels[b * T + t] = id)));
  return { sourceIds: src.ids, sourceMask: src.mask, decoderIds: dec.ids, decoderMask: dec.mask, labels: tensor(labels, [pairs.length, T], { dtype: 'int32', device }) };
}

/** The teacher-forced loss of a batch's tensors: the decoder reads target[:-1] and predicts target[1:] (padding ignored). */
export function seq2seqLossOf(model: T5ForConditionalGeneration, t: Seq2seqInputs): Tensor {
  const { logits } = model.forward({ inputIds: t.sourceIds, attentionMask: t.sourceMask, decoderInputIds: t.decoderIds, decoderAttentionMask: t.decoderMask });
  return seq2seqLoss(logits, t.labels);
}

/** The teacher-forced loss of pairs (padded to their longest), on the model's device. */
export function summarizeLoss(model: T5ForConditionalGeneration, pairs: readonly EncodedPair[], pad: number): Tensor {
  return seq2seqLossOf(model, seq2seqInputs(pairs, pad, model.device, { multiple: 1, maxSource: Infinity, maxTarget: Infinity }));
}

/** A T5 task's inputs and lossOf (summarize, pegasus): pairs padded as the run asks, up to data.max_source and data.max_target. */
export function seq2seqStep(model: T5ForConditionalGeneration, pad: number, device: string, data: { max_source: number; max_target: number }) {
  return {
    inputs: ({ records }: Batch<EncodedPair>, padTo: number) => seq2seqInputs(records, pad, device, { multiple: padTo, maxSource: data.max_source, maxTarget: data.max_target }),
    lossOf: (inputs: Seq2seqInputs) => seq2seqLossOf(model, inputs),
  };
}

/** Generated targets for sources, as text: beams 1 decodes greedily, every row at once; more, by beam search row by row. */
export function summarize(model: T5ForConditionalGeneration, tokenizer: T5PegasusTokenizer, sources: readonly number[][], o: { maxTarget: number; beams: number; minTokens: number; batchSize?: number }): string[] {
  const out: string[] = [];
  const batch = o.batchSize ?? 32;
  const wasTraining = model.training;
  model.eval();
  try {
    for (let i = 0; i < sources.length; i += batch) {
      const chunk = sources.slice(i, i + batch);
      const generated = tidy(() => {
        const { ids, mask } = padded(chunk, tokenizer.padId, model.device);
        // a target's [CLS] is the decoder's start: at most maxTarget - 1 new tokens, [SEP] included
        return generate(model, ids, {
          attentionMask: mask,
          mode: o.beams === 1 ? 'greedy' : 'beam',
          numBeams: o.beams,
          maxNewTokens: o.maxTarget - 1,
          minNewTokens: Math.min(o.minTokens, o.maxTarget - 1),
          endTokenId: tokenizer.sepId,
        });
      });
      for (const g of generated) out.push(tokenizer.decode(g.finished ? g.tokens.slice(0, -1) : g.tokens));
    }
  } finally {
    model.train(wasTraining);
  }
  return out;
}

/** The scores of a model on encoded pairs (generated targets against the references). */
export function scoreSummaries(model: T5ForConditionalGeneration, tokenizer: T5PegasusTokenizer, pairs: readonly EncodedPair[], o: { maxTarget: number; beams: number; minTokens: number }): SummaryScores {
  const predictions = summarize(model, tokenizer, pairs.map((p) => p.sourceIds), o);
  const metrics = new SummaryMetrics();
  predictions.forEach((p, i) => metrics.update(p, pairs[i]!.target));
  return metrics.result();
}

/** The T5 config of a run: its model keys (or init's checkpoint config) with the tokenizer's ids. */
export function modelConfig(c: Pick<SummarizeConfig, 'model'>, tokenizer: T5PegasusTokenizer, base: Partial<T5Config> | null): T5Config {
  const ids = { vocabSize: tokenizer.vocabSize, padTokenId: tokenizer.padId, decoderStartTokenId: tokenizer.clsId, eosTokenId: tokenizer.sepId };
  if (base) return t5Config({ ...base, ...ids, dropoutRate: c.model.dropout });
  const m = c.model;
  return t5Config({ dModel: m.d_model, dKv: m.d_kv, numHeads: m.heads, dFf: m.d_ff, numLayers: m.layers, numDecoderLayers: m.decoder_layers, dropoutRate: m.dropout, ...ids });
}

/** What buildT5 reads of a T5 task's config. */
export type T5TaskConfig = Pick<SummarizeConfig, 'model' | 'init' | 'variant'> & { train: { seed: number } };

/**
 * The model of a T5 task's run, in training mode: a resumed run's architecture (its weights are
 * loaded by the run), else init's (a summarize or pegasus run's best checkpoint, or a T5
 * checkpoint directory), else model.* from scratch. The vocabulary must be the tokenizer's.
 */
export function buildT5(config: T5TaskConfig, tokenizer: T5PegasusTokenizer, run: RunContext): T5ForConditionalGeneration {
  const seeds = { seed: config.train.seed, dropoutRng: run.dropout };
  if (run.resume) return new T5ForConditionalGeneration(modelConfig(config, tokenizer, archConfig(run.resume.arch)), seeds);
  if (config.init === '') return new T5ForConditionalGeneration(modelConfig(config, tokenizer, null), seeds);
  if (existsSync(path.join(config.init, INDEX_FILE))) {
    const file = path.join(checkpointDir(config.init, 'best'), MODEL_FILE);
    const { task, arch } = readModelHeader(file);
    if (task !== 'summarize' && task !== 'pegasus') throw new FormatError(`init: ${config.init} is a ${task} run, not a summarize or pegasus run`);
    const t = modelConfig(config, tokenizer, archConfig(arch));
    checkArchitecture(file, arch, summarizeArch(t));
    return buildFromCheckpoint(file, () => new T5ForConditionalGeneration(t, seeds)).train();
  }
  const checkpoint = resolveT5Pretrained(config.init, config.variant).config;
  if (checkpoint.vocabSize !== tokenizer.vocabSize) {
    throw new FormatError(`${config.init} has a vocabulary of ${checkpoint.vocabSize} tokens, the tokenizer ${tokenizer.vocabSize}: give model.vocab, the checkpoint's vocab.txt`);
  }
  const t = modelConfig(config, tokenizer, checkpoint);
  return T5ForConditionalGeneration.fromPretrained(config.init, { variant: config.variant, dropoutRng: run.dropout, config: t }).train();
}

/** The tokens a batch of pairs feeds the model (sources, and targets but their last token), for tokens/s. */
export function pairTokens(records: EncodedPair[]): number {
  return records.reduce((n, r) => n + r.sourceIds.length + r.targetIds.length - 1, 0);
}

/** A T5 run's model in one phrase: 't5 2+2x128', and where it started. */
export function describeT5(c: T5Config, init: string): string {
  return `t5 ${c.numLayers}+${c.numDecoderLayers}x${c.dModel}${init ? ` from ${path.basename(init)}` : ''}`;
}

/** The architecture record of a summarization model (checked when loading its checkpoints): its T5 config but dropout and init. */
export function summarizeArch(t: T5Config): Architecture {
  const { dropoutRate: _dropout, initializerFactor: _init, ...rest } = t;
  return { 'model.kind': 't5', ...rest };
}

/** The T5 config fields of an architecture record (a checkpoint's sizes, whatever the run's model keys say: init may have set them). */
function archConfig(arch: Architecture): Partial<T5Config> {
  const { 'model.kind': _kind, ...fields } = arch;
  return fields as Partial<T5Config>;
}

export function vocabOf(c: Pick<SummarizeConfig, 'model'>): string {
  return c.model.vocab === '' ? BUNDLED_VOCABS.t5PegasusBase : c.model.vocab;
}

const x100 = (s: SummaryScores) => ({ rouge1: s.rouge1 * 100, rouge2: s.rouge2 * 100, rougeL: s.rougeL * 100, bleu: s.bleu * 100 });
const round = (s: SummaryScores) => Object.fromEntries(Object.entries(x100(s)).map(([k, v]) => [k, Number(v.toFixed(2))]));

/** The summarization task: `kexue train|eval|predict summarize`. */
export const summarizeTask = defineTask({
  name: 'summarize',
  summary: 'summarization (title generation) with a T5 PEGASUS / mT5 encoder-decoder, scored with ROUGE and BLEU',
  details: [
    'With no data key it trains a small T5 from scratch on the shipped CSL sample (abstract → title)',
    'and prints dev ROUGE-L, ROUGE-1, ROUGE-2 and BLEU (character level, ×100) beside the lead',
    'baseline (the first characters of each abstract, as many as the mean title). init=DIR fine-tunes',
    'a T5 checkpoint directory instead, such as the published T5 PEGASUS weights.',
    '',
    'Examples:',
    '  kexue train summarize',
    '  kexue train summarize init=t5_pegasus_small optim.name=adamw optim.lr=2e-4 decode.beams=1',
    '  kexue train summarize data.train=lcsts/train.tsv data.dev=lcsts/dev.tsv data.format=lcsts',
  ],
  config: SUMMARIZE_KEYS,
  recipe: FROM_SCRATCH_LR,
  best: { metric: 'bleu', higherIsBetter: true },
  async setup(config, run) {
    const tokenizer = T5PegasusTokenizer.fromVocab(vocabOf(config));
    const trainPairs = await readPairs(config.data.train, config.data.format);
    const devPairs = config.data.dev ? await readPairs(config.data.dev, config.data.format) : [];
    const scored = config.data.dev_limit > 0 ? devPairs.slice(0, config.data.dev_limit) : devPairs;
    const train = new Dataset(encodePairs(trainPairs, tokenizer, config.data.max_source, config.data.max_target));
    const dev = encodePairs(scored, tokenizer, config.data.max_source, config.data.max_target);
    const model = buildT5(config, tokenizer, run);
    const lead = devPairs.length ? x100(leadBaseline(scored)) : null;
    const decode = { maxTarget: config.data.max_target, beams: config.decode.beams, minTokens: config.decode.min_tokens };
    const c = model.config;
    return {
      model,
      data: train,
      ...seq2seqStep(model, tokenizer.padId, run.device, config.data),
      lossWeight: ({ records }: Batch<EncodedPair>) => targetTokens(records),
      tokens: pairTokens,
      ...(dev.length
        ? {
            evaluate: async () => {
              const s = x100(scoreSummaries(model, tokenizer, dev, decode));
              return { ...s, lead_rougeL: lead!.rougeL, lead_bleu: lead!.bleu };
            },
          }
        : {}),
      arch: summarizeArch(c),
      files: { 'vocab.txt': vocabOf(config) },
      about: {
        model: describeT5(c, config.init),
        data: { train: train.length, dev: dev.length, unit: 'pairs' },
        extra: lead ? `lead baseline: ROUGE-L ${lead.rougeL.toFixed(2)}, BLEU ${lead.bleu.toFixed(2)}` : '',
      },
    };
  },
  describeEval: (m) =>
    `dev ROUGE-L ${m.rougeL!.toFixed(2)}, ROUGE-1 ${m.rouge1!.toFixed(2)}, ROUGE-2 ${m.rouge2!.toFixed(2)}, BLEU ${m.bleu!.toFixed(2)}` +
    (m.lead_rougeL !== undefined ? ` (lead baseline: ROUGE-L ${m.lead_rougeL.toFixed(2)}, BLEU ${m.lead_bleu!.toFixed(2)})` : ''),
  commands: {
    eval: {
      summary: 'ROUGE-1/2/L and BLEU of a trained summarization run on a file of pairs, beside the lead baseline',
      details: [
        'Prints {"rougeL", "rouge1", "rouge2", "bleu", "pairs", "data", "lead": {...}} as JSON (×100, character',
        'level, averaged over pairs; an empty generated target scores 0).',
        '',
        'Examples:',
        '  kexue eval summarize runs/summarize-20250101-120000 --data dev.tsv --beams 3',
      ],
      options: [
        ...evalDataOptions('a file of pairs', FORMATS),
        { name: 'beams', type: 'integer', valueName: 'K', description: "beams (default: the run's decode.beams)" },
        ...RUN_DIR_OPTIONS,
      ],
      async run(runDir, { options }, io) {
        const s = Summarizer.load(runDir, options.checkpoint as 'best' | 'last', options.device as string, io.warn);
        try {
          const file = options.data !== undefined ? path.resolve(io.cwd, options.data as string) : s.config.data.dev;
          if (!file) throw new RequestError('the run has no data.dev: give --data FILE');
          const pairs = await readPairs(file, (options.format as SummarizationFormat | undefined) ?? s.config.data.format);
          const encoded = encodePairs(pairs, s.tokenizer, s.config.data.max_source, s.config.data.max_target);
          const scores = scoreSummaries(s.model, s.tokenizer, encoded, { ...s.decodeOptions, beams: (options.beams as number | undefined) ?? s.decodeOptions.beams });
          io.write(`${JSON.stringify({ ...round(scores), pairs: pairs.length, data: file, lead: round(leadBaseline(pairs)) })}\n`);
        } finally {
          s.dispose();
        }
      },
    },
    predict: {
      summary: 'generated targets (titles) of texts, as JSON lines',
      details: [
        'One line per text: {"text", "summary"}. --input FILE reads one text a line (- for standard input).',
        '',
        'Examples:',
        '  kexue predict summarize runs/summarize-20250101-120000 "本文提出了一种……"',
        '  kexue predict summarize runs/summarize-20250101-120000 --input abstracts.txt --beams 3',
      ],
      options: [
        { name: 'input', type: 'string', short: 'i', valueName: 'FILE', description: "texts, one a line ('-' = standard input)" },
        { name: 'beams', type: 'integer', valueName: 'K', description: "beams (default: the run's decode.beams)" },
        ...RUN_DIR_OPTIONS,
      ],
      positionals: [{ name: 'texts', description: 'texts to summarize', variadic: true }],
      async run(runDir, { options, positionals }, io) {
        let texts = (positionals.texts as string[] | undefined) ?? [];
        const input = options.input as string | undefined;
        if (input !== undefined) {
          if (texts.length) throw new RequestError('give texts or --input, not both');
          const lines = input === '-' ? (await io.readStdin()).split('\n') : (await readTextCorpus(path.resolve(io.cwd, input)).toArray()).map((d) => d.text);
          texts = lines.filter((l) => l.trim() !== '');
        }
        if (texts.length === 0) throw new RequestError('no text: give texts or --input FILE');
        const s = Summarizer.load(runDir, options.checkpoint as 'best' | 'last', options.device as string, io.warn);
        try {
          const beams = (options.beams as number | undefined) ?? s.decodeOptions.beams;
          s.summarize(texts, { beams }).forEach((summary, i) => io.write(`${JSON.stringify({ text: texts[i], summary })}\n`));
        } finally {
          s.dispose();
        }
      },
    },
  },
});

/** A trained summarization model loaded from a run directory. */
export class Summarizer {
  readonly model: T5ForConditionalGeneration;
  readonly tokenizer: T5PegasusTokenizer;
  readonly config: SummarizeConfig;

  private constructor(model: T5ForConditionalGeneration, tokenizer: T5PegasusTokenizer, config: SummarizeConfig) {
    this.model = model;
    this.tokenizer = tokenizer;
    this.config = config;
  }

  /**
   * Loads the best (default) or last checkpoint of a summarization run onto a device: E_FORMAT for
   * another task or architecture, E_NO_CUDA / E_DEVICE for a device this machine lacks.
   */
  static load(runDir: string, which: 'best' | 'last' = 'best', device = 'cpu', warn?: (message: string) => void): Summarizer {
    const canonical = resolveDevice(device);
    const config = summarizeTask.readConfig(runDir);
    const { dir, file, arch } = openRunCheckpoint(runDir, which, 'summarize', warn);
    const tokenizer = T5PegasusTokenizer.fromVocab(path.join(dir, 'vocab.txt'));
    const t = modelConfig(config, tokenizer, archConfig(arch));
    checkArchitecture(file, arch, summarizeArch(t));
    const model = buildFromCheckpoint(file, () => new T5ForConditionalGeneration(t), { device: canonical }).eval();
    return new Summarizer(model, tokenizer, config);
  }

  /** The run's decoding settings. */
  get decodeOptions(): { maxTarget: number; beams: number; minTokens: number } {
    return { maxTarget: this.config.data.max_target, beams: this.config.decode.beams, minTokens: this.config.decode.min_tokens };
  }

  /** Generated targets of texts (sources cut at the run's data.max_source tokens). */
  summarize(texts: readonly string[], o: { beams?: number } = {}): string[] {
    const sources = texts.map((t) => this.tokenizer.encode(t, { maxLength: this.config.data.max_source }).ids);
    return summarize(this.model, this.tokenizer, sources, { ...this.decodeOptions, ...(o.beams ? { beams: o.beams } : {}) });
  }

  /**
   * The target of one text as it is generated, greedily (default) or sampled: yields each new piece
   * of text as soon as its token is chosen, and stops at [SEP] or the run's data.max_target.
   */
  async *stream(text: string, o: Pick<GenerateOptions, 'mode' | 'temperature' | 'topK' | 'topP' | 'seed'> = {}): AsyncGenerator<string> {
    if (o.mode === 'beam') throw new RequestError("a beam search's text is known only at its end: stream with mode 'greedy' or 'sample'");
    const ids = this.tokenizer.encode(text, { maxLength: this.config.data.max_source }).ids;
    const input = tensor(Int32Array.from(ids), [1, ids.length], { dtype: 'int32', device: this.model.device });
    const tokens: number[] = [];
    let shown = '';
    try {
      const { maxTarget, minTokens } = this.decodeOptions;
      const steps = generateStream(this.model, input, { ...o, mode: o.mode ?? 'greedy', maxNewTokens: maxTarget - 1, minNewTokens: Math.min(minTokens, maxTarget - 1), endTokenId: this.tokenizer.sepId });
      for await (const { token } of steps) {
        if (token === this.tokenizer.sepId) break;
        tokens.push(token);
        const now = this.tokenizer.decode(tokens);
        // a piece joins the text so far (WordPiece's ## pieces glue to the word before)
        if (now.startsWith(shown) && now.length > shown.length) yield now.slice(shown.length);
        shown = now;
      }
    } finally {
      input.dispose();
    }
  }

  dispose(): void {
    this.model.dispose();
  }
}
