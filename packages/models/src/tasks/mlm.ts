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
import type { Architecture } from '../train/checkpoint.js';
import { PrecisionPolicy } from '../train/precision.js';
import { trainLoop, type TrainSummary, type TrainTask } from '../train/trainer.js';
import {
  applyThreads,
  assertDataFile,
  buildOptimizer,
  dropoutGenerator,
  encoderArch,
  encoderConfig,
  loadTokenizer,
  resolvePath,
  resumePoint,
  startRun,
  totalSteps,
  vocabFile,
  type DeviceConfig,
  type ModelConfig,
  type OptimConfig,
  type PrecisionConfig,
  type RunOptions,
  type TrainConfig,
} from './common.js';
import { checkArchitecture, readModelHeader, MODEL_FILE } from '../train/checkpoint.js';

/** The resolved config of an MLM run. */
export interface MlmConfig extends PrecisionConfig, DeviceConfig {
  task: 'mlm';
  /** format auto: .jsonl/.json = the texts of a CLUENER file, anything else plain text (one document a line). */
  data: { train: string; dev: string; format: 'auto' | 'text' | 'cluener'; max_length: number; mask_prob: number };
  model: ModelConfig;
  optim: OptimConfig;
  train: TrainConfig;
}

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

/** Masked inputs of one record: ids with replacements, and the chosen positions with their targets. */
export function maskRecord(ids: readonly number[], tokenizer: BertTokenizer, prob: number, rng: PhiloxStream): { ids: number[]; positions: number[]; targets: number[] } {
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

/** The masked-LM loss (mean over chosen positions) and accuracy of a batch of token-id lists (its tensors made on the model's device). */
function mlmLoss(model: BertForMaskedLM, rows: { ids: number[]; positions: number[]; targets: number[] }[], padId: number): { loss: Tensor; logits: Tensor; targets: number[] } {
  const B = rows.length;
  const n = Math.max(...rows.map((r) => r.ids.length));
  const ids = new Int32Array(B * n).fill(padId);
  const mask = new Uint8Array(B * n);
  const where: number[] = [];
  const targets: number[] = [];
  rows.forEach((r, b) => {
    r.ids.forEach((id, t) => {
      ids[b * n + t] = id;
      mask[b * n + t] = 1;
    });
    r.positions.forEach((p, k) => {
      where.push(b * n + p);
      targets.push(r.targets[k]!);
    });
  });
  const device = model.device;
  const h = model.encoder.forward(tensor(ids, [B, n], { dtype: 'int32', device }), { attentionMask: tensor(mask, [B, n], { dtype: 'uint8', device }) }).lastHiddenState;
  const H = h.shape[2]!;
  const chosen = embedding(tensor(Int32Array.from(where), [1, where.length], { dtype: 'int32', device }), reshape(h, [B * n, H])); // [1, M, H]
  const logits = reshape(model.cls.predictions.forward(chosen), [where.length, -1]);
  return { loss: crossEntropy(logits, tensor(Int32Array.from(targets), [targets.length], { dtype: 'int32', device })), logits, targets };
}

/** Trains a masked LM (a fresh run, or continues one with options.resume). */
export async function trainMlm(config: MlmConfig, o: RunOptions): Promise<TrainSummary & { runDir: string }> {
  applyThreads(config.train);
  const precision = PrecisionPolicy.fromConfig(config);
  const device = resolveDevice(config.device);
  const cwd = o.cwd ?? process.cwd();
  const resume = o.resume ? resumePoint(o.runDir) : null;
  const trainFile = resolvePath(config.data.train, cwd);
  const devFile = config.data.dev === '' ? '' : resolvePath(config.data.dev, cwd);
  assertDataFile(trainFile, 'data.train');
  if (devFile) assertDataFile(devFile, 'data.dev');
  const vocab = vocabFile(config.model, cwd);
  const tokenizer = loadTokenizer(vocab);
  if (tokenizer.maskId < 0) throw new FormatError(`${vocab} has no [MASK] token`);
  const encode = (texts: string[]) => texts.map((t) => tokenizer.encode(t, { maxLength: config.data.max_length }).ids).filter((ids) => ids.length > 2);
  const train = new Dataset(encode(await readTexts(trainFile, config.data.format)));
  const dev = devFile ? encode(await readTexts(devFile, config.data.format)) : [];
  const arch: Architecture = { ...encoderArch(config.model, tokenizer.vocabSize), 'head.kind': 'mlm' };
  if (resume) checkArchitecture(path.join(resume.dir, MODEL_FILE), readModelHeader(path.join(resume.dir, MODEL_FILE)).arch, arch);
  const steps = totalSteps(config.train, train.length);
  const dropout = dropoutGenerator(config.train.seed, resume);
  const model = new BertForMaskedLM(encoderConfig(config.model, tokenizer.vocabSize), { seed: config.train.seed, dropoutRng: dropout });
  const optimizer = buildOptimizer(config.optim, steps);
  await startRun(o, config, model, optimizer, resume, device);
  o.progress.log(`mlm: ${train.length} train / ${dev.length} dev texts, ${config.model.kind} ${config.model.layers}x${config.model.hidden}, ${model.parameterCount()} parameters, ${steps} updates, run ${o.runDir}`);
  const seed = config.train.seed;
  const prob = config.data.mask_prob;
  const masked = (ids: number[], record: number, epoch: number) => maskRecord(ids, tokenizer, prob, new PhiloxStream(seed, record, (MASK_STREAM + epoch) % 2 ** 32));
  const evaluate = async (): Promise<Record<string, number>> => {
    let lossSum = 0;
    let correct = 0;
    let count = 0;
    for (let i = 0; i < dev.length; i += 32) {
      const rows = dev.slice(i, i + 32).map((ids, k) => masked(ids, i + k, 2 ** 32 - 1 - MASK_STREAM));
      tidy(() => {
        const { loss, logits, targets } = mlmLoss(model, rows, tokenizer.padId);
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
  };
  const task: TrainTask<number[]> = {
    name: 'mlm',
    model,
    data: train,
    loss: (batch: Batch<number[]>) => mlmLoss(model, batch.records.map((ids, k) => masked(ids, batch.indices[k]!, batch.epoch)), tokenizer.padId).loss,
    tokens: (records) => records.reduce((n, r) => n + r.length, 0),
    ...(dev.length ? { evaluate, mainMetric: { name: 'loss', higherIsBetter: false } } : {}),
  };
  const summary = await trainLoop(task, {
    runDir: o.runDir,
    batchSize: config.train.batch_size,
    gradAccum: config.train.grad_accum,
    totalSteps: steps,
    seed,
    logEvery: config.train.log_every,
    evalEvery: config.train.eval_every,
    saveEvery: config.train.save_every,
    stopAt: config.train.stop_at,
    optimizer,
    dropout,
    arch,
    config,
    files: { 'vocab.txt': vocab },
    progress: o.progress,
    ...(resume ? { resume: resume.state } : {}),
    precision,
  });
  model.dispose();
  optimizer.dispose();
  return { ...summary, runDir: o.runDir };
}
