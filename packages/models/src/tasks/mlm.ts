/**
 * Masked-LM pretraining of a BERT/RoFormer encoder on plain text (one document a line) or on the
 * texts of a CLUENER file: 15% of the real tokens are chosen, of which 80% become [MASK], 10% a
 * random token and 10% stay; the loss is the cross-entropy at the chosen positions only (their
 * hidden states are gathered before the vocabulary projection). The choice depends only on
 * (seed, epoch, record), so a resumed run masks exactly as an uninterrupted one. Its encoder starts
 * a NER run through the NER config key `init`.
 */
import path from 'node:path';

import { crossEntropy, embedding, FormatError, PhiloxStream, reshape, resolveDevice, tensor, tidy, type Tensor } from '@kexue/core-cuda';

import { BertForMaskedLM } from '../bert/model.js';
import { readCluener } from '../data/cluener.js';
import { Dataset, type Batch } from '../data/dataset.js';
import { readTextCorpus } from '../data/text.js';
import type { BertTokenizer } from '../tokenizers/bert.js';
import { buildFromCheckpoint, checkArchitecture, openRunCheckpoint, type Architecture } from '../train/checkpoint.js';
import { paddedLength } from '../train/compiled_step.js';
import { RequestError, number, type ConfigOf } from './config.js';
import { FROM_SCRATCH_LR, checkEncoderKeys, demoDataKeys, encoderArch, encoderConfig, fromScratchKeys, loadTokenizer, vocabFile } from './sections.js';
import { RUN_DIR_OPTIONS, defineTask, evalDataOptions } from './task.js';

const MLM_FORMATS = ['auto', 'text', 'cluener'] as const;

/** The config keys of `kexue train mlm`. */
export const MLM_KEYS = {
  data: {
    ...demoDataKeys({
      train: 'texts: plain text (one a line) or the texts of a CLUENER file',
      dev: "held-out texts for the masked-LM loss and accuracy ('' = none)",
      formats: MLM_FORMATS,
      format: 'auto: .jsonl/.json CLUENER texts, else plain text',
      maxLength: 'tokens per text, special tokens included',
    }),
    mask_prob: number(0.15, 'share of tokens chosen for the loss (80% [MASK], 10% random, 10% kept)', { min: 0.01, max: 1 }),
  },
  ...fromScratchKeys(),
};

/** The resolved config of an MLM run. */
export type MlmConfig = ConfigOf<typeof MLM_KEYS> & { task: string };

/** Philox counter word c3 of the masking stream ('MASK' + epoch). */
export const MASK_STREAM = 0x4d41534b;

/** Reads the texts of a file (plain text lines or a CLUENER file). */
export async function readTexts(file: string, format: MlmConfig['data']['format']): Promise<string[]> {
  const ext = path.extname(file).toLowerCase();
  const cluener = format === 'cluener' || (format === 'auto' && (ext === '.jsonl' || ext === '.json'));
  const texts = cluener ? (await readCluener(file).toArray()).map((r) => r.text) : (await readTextCorpus(file).toArray()).map((d) => d.text);
  if (texts.length === 0) throw new FormatError(`${file} holds no texts`);
  return texts;
}

/** A record's masked ids, and the chosen positions with their original tokens. */
export interface MaskedRow {
  ids: number[];
  positions: number[];
  targets: number[];
}

/** Masked inputs of one record: ids with replacements, and the chosen positions with their targets. */
export function maskRecord(ids: readonly number[], tokenizer: BertTokenizer, prob: number, rng: PhiloxStream): MaskedRow {
  const out = [...ids];
  const positions: number[] = [];
  const targets: number[] = [];
  const u = () => rng.nextUint32() / 2 ** 32;
  for (let t = 1; t < ids.length - 1; t++) {
    if (u() >= prob) continue;
    positions.push(t);
    targets.push(ids[t]!);
    const r = u();
    if (r < 0.8) out[t] = tokenizer.maskId;
    else if (r < 0.9) out[t] = rng.nextBelow(tokenizer.vocabSize);
  }
  if (positions.length === 0 && ids.length > 2) {
    // every text contributes: a text that drew no position gets its middle token masked
    const t = Math.floor(ids.length / 2);
    positions.push(t);
    targets.push(ids[t]!);
    out[t] = tokenizer.maskId;
  }
  return { ids: out, positions, targets };
}

/** A masked-LM batch's tensors (the training step's inputs). */
export type MlmInputs = {
  /** int32 [B, n]: the masked token ids, padded. */
  ids: Tensor;
  /** uint8 [B, n]: 1 at real tokens. */
  mask: Tensor;
  /** int32 [1, M]: the chosen positions, flattened b·n + t (padding rows: 0). */
  where: Tensor;
  /** int32 [M]: their original tokens (padding rows: -100, ignored by the loss). */
  targets: Tensor;
};

/** The label of a padding row of MlmInputs.targets (crossEntropy's default ignoreIndex). */
const IGNORED = -100;

/**
 * The tensors of masked rows on a device: the length n and the chosen positions M are the batch's
 * longest and count, or rounded up to a multiple of `pad.multiple` (n at most `pad.maxLength`).
 */
function mlmInputs(rows: readonly MaskedRow[], padId: number, device: string, pad: { multiple: number; maxLength: number }): MlmInputs {
  const B = rows.length;
  const n = paddedLength(Math.max(...rows.map((r) => r.ids.length)), pad.multiple, pad.maxLength);
  const chosen = rows.reduce((m, r) => m + r.positions.length, 0);
  const M = paddedLength(chosen, pad.multiple);
  const ids = new Int32Array(B * n).fill(padId);
  const mask = new Uint8Array(B * n);
  const where = new Int32Array(M);
  const targets = new Int32Array(M).fill(IGNORED);
  let m = 0;
  rows.forEach((r, b) => {
    r.ids.forEach((id, t) => {
      ids[b * n + t] = id;
      mask[b * n + t] = 1;
    });
    r.positions.forEach((p, k) => {
      where[m] = b * n + p;
      targets[m++] = r.targets[k]!;
    });
  });
  return {
    ids: tensor(ids, [B, n], { dtype: 'int32', device }),
    mask: tensor(mask, [B, n], { dtype: 'uint8', device }),
    where: tensor(where, [1, M], { dtype: 'int32', device }),
    targets: tensor(targets, [M], { dtype: 'int32', device }),
  };
}

/** The masked-LM loss (mean over the chosen positions) of a batch's tensors, and the logits at those positions [M, V]. */
function mlmLossOf(model: BertForMaskedLM, { ids, mask, where, targets }: MlmInputs): { loss: Tensor; logits: Tensor } {
  const h = model.encoder.forward(ids, { attentionMask: mask, hiddenStates: false }).lastHiddenState;
  const [B, n, H] = h.shape as [number, number, number];
  const chosen = embedding(where, reshape(h, [B * n, H])); // [1, M, H]
  const logits = reshape(model.cls.predictions.forward(chosen), [where.shape[1]!, -1]);
  return { loss: crossEntropy(logits, targets), logits };
}

/** The Philox stream word of the held-out masking: fixed, so every evaluation masks the same positions. */
const EVAL_MASK_EPOCH = 2 ** 32 - 1 - MASK_STREAM;

/** The masked inputs of a record in an epoch (seeded by (seed, record, epoch): a resume masks the same). */
function masked(ids: number[], tokenizer: BertTokenizer, seed: number, prob: number, record: number, epoch: number) {
  return maskRecord(ids, tokenizer, prob, new PhiloxStream(seed, record, (MASK_STREAM + epoch) % 2 ** 32));
}

/** Masked-LM loss and accuracy of a model on token-id lists (batches of 32, the fixed held-out masking). */
function scoreMlm(model: BertForMaskedLM, texts: readonly number[][], tokenizer: BertTokenizer, seed: number, prob: number): Record<string, number> {
  let lossSum = 0;
  let correct = 0;
  let count = 0;
  for (let i = 0; i < texts.length; i += 32) {
    const rows = texts.slice(i, i + 32).map((ids, k) => masked(ids, tokenizer, seed, prob, i + k, EVAL_MASK_EPOCH));
    const targets = rows.flatMap((r) => r.targets);
    tidy(() => {
      const { loss, logits } = mlmLossOf(model, mlmInputs(rows, tokenizer.padId, model.device, { multiple: 1, maxLength: Infinity }));
      lossSum += loss.item() * targets.length;
      const V = logits.shape[1]!;
      const s = logits.toFloat32Array();
      targets.forEach((t, r) => {
        let best = 0;
        for (let v = 1; v < V; v++) if (s[r * V + v]! > s[r * V + best]!) best = v;
        if (best === t) correct++;
      });
      count += targets.length;
    });
  }
  return { loss: lossSum / count, accuracy: correct / count };
}

/** The token ids of texts (texts of two tokens or fewer, [CLS] and [SEP] alone, are left out). */
function encodeTexts(texts: readonly string[], tokenizer: BertTokenizer, maxLength: number): number[][] {
  return texts.map((t) => tokenizer.encode(t, { maxLength }).ids).filter((ids) => ids.length > 2);
}

/** The architecture record of an MLM model. */
function mlmArch(c: MlmConfig, vocabSize: number): Architecture {
  return { ...encoderArch(c.model, vocabSize), 'head.kind': 'mlm' };
}

/** Masked-LM pretraining: `kexue train|eval mlm`. */
export const mlmTask = defineTask({
  name: 'mlm',
  summary: 'masked-LM pretraining of a BERT/RoFormer encoder (its encoder can start a NER run: init=RUN)',
  details: ['Examples:', '  kexue train mlm train.epochs=20 --run-dir runs/mlm', '  kexue train ner init=runs/mlm --run-dir runs/ner-from-mlm'],
  config: MLM_KEYS,
  recipe: FROM_SCRATCH_LR,
  best: { metric: 'loss', higherIsBetter: false },
  check: (config) => checkEncoderKeys(config.model, config.data.max_length),
  async setup(config, run) {
    const vocab = vocabFile(config.model);
    const tokenizer = loadTokenizer(vocab);
    if (tokenizer.maskId < 0) throw new FormatError(`${vocab} has no [MASK] token`);
    const train = new Dataset(encodeTexts(await readTexts(config.data.train, config.data.format), tokenizer, config.data.max_length));
    const dev = config.data.dev ? encodeTexts(await readTexts(config.data.dev, config.data.format), tokenizer, config.data.max_length) : [];
    const model = new BertForMaskedLM(encoderConfig(config.model, tokenizer.vocabSize), { seed: config.train.seed, dropoutRng: run.dropout });
    const { seed } = config.train;
    const prob = config.data.mask_prob;
    return {
      model,
      data: train,
      // the masking is drawn on the host from (seed, record, epoch): it is part of the inputs
      inputs: (batch: Batch<number[]>, padTo: number) =>
        mlmInputs(
          batch.records.map((ids, k) => masked(ids, tokenizer, seed, prob, batch.indices[k]!, batch.epoch)),
          tokenizer.padId,
          run.device,
          { multiple: padTo, maxLength: config.data.max_length },
        ),
      lossOf: (inputs: MlmInputs) => mlmLossOf(model, inputs).loss,
      // the loss is a mean over the chosen positions (data-parallel shares are weighted by them)
      lossWeight: (batch: Batch<number[]>) =>
        batch.records.reduce((n, ids, k) => n + masked(ids, tokenizer, seed, prob, batch.indices[k]!, batch.epoch).positions.length, 0),
      tokens: (records: number[][]) => records.reduce((n, r) => n + r.length, 0),
      ...(dev.length ? { evaluate: async () => scoreMlm(model, dev, tokenizer, seed, prob) } : {}),
      arch: mlmArch(config, tokenizer.vocabSize),
      files: { 'vocab.txt': vocab },
      about: { model: `${config.model.kind} ${config.model.layers}x${config.model.hidden}`, data: { train: train.length, dev: dev.length, unit: 'texts' } },
    };
  },
  describeEval: (m) => `dev loss ${m.loss!.toFixed(4)}, accuracy ${m.accuracy!.toFixed(4)}`,
  commands: {
    eval: {
      summary: 'masked-LM loss and accuracy of a trained MLM run on held-out texts',
      details: [
        'Prints {"loss", "accuracy", "texts", "data"} as JSON. The positions are chosen as during',
        "training's evaluations (the run's seed and data.mask_prob), so the numbers are comparable.",
        '',
        'Example:',
        '  kexue eval mlm runs/mlm-20250101-120000 --data texts.txt',
      ],
      options: [...evalDataOptions('texts', MLM_FORMATS), ...RUN_DIR_OPTIONS],
      async run(runDir, { options }, io) {
        const device = resolveDevice(options.device as string);
        const config = mlmTask.readConfig(runDir);
        const file = options.data !== undefined ? path.resolve(io.cwd, options.data as string) : config.data.dev;
        if (!file) throw new RequestError('the run has no data.dev: give --data FILE');
        const { dir, file: weights, arch } = openRunCheckpoint(runDir, options.checkpoint as 'best' | 'last', 'mlm', io.warn);
        const tokenizer = loadTokenizer(path.join(dir, 'vocab.txt'));
        checkArchitecture(weights, arch, mlmArch(config, tokenizer.vocabSize));
        const texts = encodeTexts(await readTexts(file, (options.format as MlmConfig['data']['format'] | undefined) ?? config.data.format), tokenizer, config.data.max_length);
        const model = buildFromCheckpoint(weights, () => new BertForMaskedLM(encoderConfig(config.model, tokenizer.vocabSize), { seed: 0 }), { device }).eval();
        try {
          const r = scoreMlm(model, texts, tokenizer, config.train.seed, config.data.mask_prob);
          io.write(`${JSON.stringify({ loss: Number(r.loss!.toFixed(6)), accuracy: Number(r.accuracy!.toFixed(6)), texts: texts.length, data: file })}\n`);
        } finally {
          model.dispose();
        }
      },
    },
  },
});
