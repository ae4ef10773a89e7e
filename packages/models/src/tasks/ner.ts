/**
 * The NER task: CLUENER JSON lines or BMES/BIO character files → tokenised batches with entity
 * spans as sparse GlobalPointer labels → a BERT/RoFormer encoder with a GlobalPointer or Efficient
 * GlobalPointer head → training (trainNer), evaluation with entity-level P/R/F1 (evaluateNer) and
 * prediction of entities with character offsets (NerPredictor).
 */
import path from 'node:path';

import { ArgumentError, FormatError, resolveDevice, tensor, tidy, type Tensor } from '@kexue/core-cuda';

import { BertModel, type ModelSeeds } from '../bert/model.js';
import { readCluener } from '../data/cluener.js';
import { Dataset } from '../data/dataset.js';
import type { Entity, NerRecord } from '../data/entities.js';
import { TokenSpanMapper, entitiesToTokens } from '../data/spans.js';
import { readTaggedChars } from '../data/tagged.js';
import { EfficientGlobalPointer, GlobalPointer, sparseGlobalPointerLoss } from '../heads/global_pointer.js';
import { decodeSpans, spansToEntities, type DecodedEntity } from '../heads/decode.js';
import { EntityF1, type PRF } from '../metrics/entity_f1.js';
import { Module } from '../nn/module.js';
import type { BertTokenizer } from '../tokenizers/bert.js';
import { checkArchitecture, checkpointDir, loadWeights, MODEL_FILE, readModelHeader, type Architecture } from '../train/checkpoint.js';
import { readJson } from '../train/files.js';
import { CONFIG_FILE, assertRunDir } from '../train/run_dir.js';
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

/** NER data formats: CLUENER JSON lines, BMES or BIO columns, Weibo's BIO with position digits. */
export type NerFormat = 'auto' | 'cluener' | 'bmes' | 'bio' | 'weibo';

/** The resolved config of a NER run (RUN/config.json). */
export interface NerConfig extends PrecisionConfig, DeviceConfig {
  task: 'ner';
  data: { train: string; dev: string; format: NerFormat; max_length: number };
  model: ModelConfig;
  head: { kind: 'egp' | 'gp'; size: number };
  optim: OptimConfig;
  train: TrainConfig;
  /** A run directory (NER or MLM) whose encoder weights start this run; '' = from scratch. */
  init: string;
}

/** A record ready for the model: token ids, offsets, gold spans as token indices. */
export interface EncodedNer {
  text: string;
  ids: number[];
  offsets: [number, number][];
  /** Gold entities as [type index, first token, last token]. */
  spans: [number, number, number][];
  /** Gold entities over characters (for evaluation). */
  entities: Entity[];
}

/** Reads a NER file in a format (auto: by extension, .jsonl/.json CLUENER, .bmes, .bio). */
export async function readNerData(file: string, format: NerFormat = 'auto'): Promise<NerRecord[]> {
  let f = format;
  if (f === 'auto') {
    const ext = path.extname(file).toLowerCase();
    if (ext === '.jsonl' || ext === '.json') f = 'cluener';
    else if (ext === '.bmes') f = 'bmes';
    else if (ext === '.bio') f = 'bio';
    else throw new ArgumentError(`cannot tell the format of ${file} from its name: set data.format (cluener, bmes, bio or weibo)`);
  }
  const stream = f === 'cluener' ? readCluener(file) : readTaggedChars(file, { scheme: f === 'bmes' ? 'bmes' : 'bio', positionSuffix: f === 'weibo' });
  const records = await stream.toArray();
  if (records.length === 0) throw new FormatError(`${file} holds no records`);
  return records;
}

/** The entity types of some records, sorted. */
export function entityTypes(records: readonly NerRecord[]): string[] {
  return [...new Set(records.flatMap((r) => r.entities.map((e) => e.type)))].sort();
}

/** Tokenises records; entities of unknown types or cut off by truncation are left out of `spans`. */
export function encodeNer(records: readonly NerRecord[], tokenizer: BertTokenizer, labels: readonly string[], maxLength: number): EncodedNer[] {
  const typeIndex = new Map(labels.map((t, i) => [t, i]));
  return records.map((r) => {
    const enc = tokenizer.encode(r.text, { maxLength });
    const { spans } = entitiesToTokens(r.entities, new TokenSpanMapper(enc.offsets));
    const out: [number, number, number][] = [];
    for (const s of spans) {
      const t = typeIndex.get(s.type);
      if (t !== undefined) out.push([t, s.first, s.last]);
    }
    return { text: r.text, ids: enc.ids, offsets: enc.offsets, spans: out, entities: r.entities };
  });
}

/** Model inputs of a batch, padded to its longest record. */
export interface NerBatch {
  ids: Tensor;
  mask: Tensor;
  /** int32 [B, heads, P]: flattened spans i·n + j, padded with 0. */
  labels: Tensor;
  lengths: number[];
}

/** Builds padded tensors for a batch on a device (the model's; call inside tidy). */
export function nerBatch(records: readonly EncodedNer[], heads: number, padId: number, device = 'cpu'): NerBatch {
  const B = records.length;
  const n = Math.max(...records.map((r) => r.ids.length));
  const ids = new Int32Array(B * n).fill(padId);
  const mask = new Uint8Array(B * n);
  const perHead: number[][][] = records.map(() => Array.from({ length: heads }, () => []));
  records.forEach((r, b) => {
    r.ids.forEach((id, t) => {
      ids[b * n + t] = id;
      mask[b * n + t] = 1;
    });
    for (const [type, i, j] of r.spans) perHead[b]![type]!.push(i * n + j);
  });
  const P = Math.max(1, ...perHead.flatMap((h) => h.map((l) => l.length)));
  const labels = new Int32Array(B * heads * P);
  perHead.forEach((h, b) => h.forEach((list, t) => list.forEach((v, p) => (labels[(b * heads + t) * P + p] = v))));
  return {
    ids: tensor(ids, [B, n], { dtype: 'int32', device }),
    mask: tensor(mask, [B, n], { dtype: 'uint8', device }),
    labels: tensor(labels, [B, heads, P], { dtype: 'int32', device }),
    lengths: records.map((r) => r.ids.length),
  };
}

/** An encoder (named 'bert' or 'roformer', as in HF checkpoints) with a GlobalPointer head. */
export class NerModel extends Module {
  readonly encoder: BertModel;
  readonly head: GlobalPointer | EfficientGlobalPointer;

  constructor(model: ModelConfig, head: NerConfig['head'], vocabSize: number, labels: number, seeds: ModelSeeds & { seed: number }) {
    super();
    this.encoder = this.addModule(model.kind, new BertModel(encoderConfig(model, vocabSize), seeds));
    const Head = head.kind === 'egp' ? EfficientGlobalPointer : GlobalPointer;
    this.head = this.addModule('global_pointer', new Head({ hidden: model.hidden, heads: labels, headSize: head.size, rng: seeds.seed + 7 }));
  }

  /** ids int32 [B, n], mask uint8 [B, n] → logits [B, labels, n, n]. */
  forward(ids: Tensor, mask: Tensor): Tensor {
    const h = this.encoder.forward(ids, { attentionMask: mask }).lastHiddenState;
    return this.head.forward(h, mask);
  }
}

/** The architecture record of a NER model (checked when loading its checkpoints). */
export function nerArch(c: Pick<NerConfig, 'model' | 'head'>, vocabSize: number, labels: readonly string[]): Architecture {
  return { ...encoderArch(c.model, vocabSize), 'head.kind': c.head.kind, 'head.size': c.head.size, labels: [...labels] };
}

/** Entities of a batch's logits, per record, over characters. */
function decodeBatch(logits: Tensor, records: readonly EncodedNer[], labels: readonly string[], lengths: number[], threshold = 0): DecodedEntity[][] {
  const spans = decodeSpans(logits, { lengths, threshold });
  const byRecord: (typeof spans)[] = records.map(() => []);
  for (const s of spans) byRecord[s.batch]!.push(s);
  return records.map((r, b) => spansToEntities(byRecord[b]!, r.offsets, labels));
}

/** Entity-level P/R/F1 of a model on encoded records (batches in file order). */
export function scoreNer(model: NerModel, records: readonly EncodedNer[], labels: readonly string[], padId: number, batchSize: number): EntityF1 {
  const f1 = new EntityF1();
  const wasTraining = model.training;
  model.eval();
  try {
    for (let i = 0; i < records.length; i += batchSize) {
      const chunk = records.slice(i, i + batchSize);
      const predicted = tidy(() => {
        const b = nerBatch(chunk, labels.length, padId, model.device);
        return decodeBatch(model.forward(b.ids, b.mask), chunk, labels, b.lengths);
      });
      chunk.forEach((r, k) => f1.update(predicted[k]!, r.entities));
    }
  } finally {
    model.train(wasTraining);
  }
  return f1;
}

const prf = (r: PRF) => ({ precision: r.precision, recall: r.recall, f1: r.f1 });

/** Trains a NER model (a fresh run, or continues one with options.resume). */
export async function trainNer(config: NerConfig, o: RunOptions): Promise<TrainSummary & { runDir: string; labels: string[] }> {
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
  const trainRecords = await readNerData(trainFile, config.data.format);
  const devRecords = devFile ? await readNerData(devFile, config.data.format) : [];
  let labels = entityTypes(trainRecords);
  if (resume) {
    const { arch } = readModelHeader(path.join(resume.dir, MODEL_FILE));
    labels = (arch.labels as string[]) ?? labels;
  }
  if (labels.length === 0) throw new FormatError(`${trainFile} has no entities to learn`);
  const arch = nerArch(config, tokenizer.vocabSize, labels);
  if (resume) checkArchitecture(path.join(resume.dir, MODEL_FILE), readModelHeader(path.join(resume.dir, MODEL_FILE)).arch, arch);
  const train = new Dataset(encodeNer(trainRecords, tokenizer, labels, config.data.max_length));
  const dev = encodeNer(devRecords, tokenizer, labels, config.data.max_length);
  const steps = totalSteps(config.train, train.length);
  const dropout = dropoutGenerator(config.train.seed, resume);
  const model = new NerModel(config.model, config.head, tokenizer.vocabSize, labels.length, { seed: config.train.seed, dropoutRng: dropout });
  if (config.init !== '' && !resume) initEncoder(model, config, tokenizer.vocabSize, cwd);
  const optimizer = buildOptimizer(config.optim, steps);
  await startRun(o, config, model, optimizer, resume, device);
  o.progress.log(
    `ner: ${train.length} train / ${dev.length} dev records, ${labels.length} types, ${config.model.kind} ${config.model.layers}x${config.model.hidden} + ${config.head.kind}, ` +
      `${model.parameterCount()} parameters, ${steps} updates, run ${o.runDir}`,
  );
  const pad = tokenizer.padId;
  const task: TrainTask<EncodedNer> = {
    name: 'ner',
    model,
    data: train,
    loss: ({ records }) => {
      const b = nerBatch(records, labels.length, pad, device);
      return sparseGlobalPointerLoss(model.forward(b.ids, b.mask), b.labels);
    },
    tokens: (records) => records.reduce((n, r) => n + r.ids.length, 0),
    ...(dev.length
      ? { evaluate: async () => prf(scoreNer(model, dev, labels, pad, Math.max(config.train.batch_size, 32)).result()), mainMetric: { name: 'f1', higherIsBetter: true } }
      : {}),
  };
  const summary = await trainLoop(task, {
    runDir: o.runDir,
    batchSize: config.train.batch_size,
    gradAccum: config.train.grad_accum,
    totalSteps: steps,
    seed: config.train.seed,
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
  return { ...summary, runDir: o.runDir, labels };
}

/** Starts the encoder from another run's best checkpoint (a NER or an MLM run). */
function initEncoder(model: NerModel, config: NerConfig, vocabSize: number, cwd: string): void {
  const runDir = resolvePath(config.init, cwd);
  assertRunDir(runDir);
  const file = path.join(checkpointDir(runDir, 'best'), MODEL_FILE);
  const { arch } = readModelHeader(file);
  const expected = encoderArch(config.model, vocabSize);
  checkArchitecture(file, arch, expected);
  loadWeights(file, model.encoder, { prefix: `${config.model.kind}.`, partial: true });
}

/** A trained NER model loaded from a run directory, ready to evaluate and predict. */
export class NerPredictor {
  readonly model: NerModel;
  readonly tokenizer: BertTokenizer;
  readonly labels: string[];
  readonly config: NerConfig;
  readonly checkpoint: string;

  private constructor(model: NerModel, tokenizer: BertTokenizer, labels: string[], config: NerConfig, checkpoint: string) {
    this.model = model;
    this.tokenizer = tokenizer;
    this.labels = labels;
    this.config = config;
    this.checkpoint = checkpoint;
  }

  /**
   * Loads the best (default) or last checkpoint of a NER run onto a device (default the CPU,
   * whichever device trained it): E_FORMAT for another task or architecture, E_NO_CUDA / E_DEVICE
   * for a device this machine lacks.
   */
  static load(runDir: string, which: 'best' | 'last' = 'best', device = 'cpu'): NerPredictor {
    const canonical = resolveDevice(device);
    assertRunDir(runDir);
    const config = readJson(path.join(runDir, CONFIG_FILE), 'run config') as NerConfig;
    const dir = checkpointDir(runDir, which);
    const file = path.join(dir, MODEL_FILE);
    const { task, arch } = readModelHeader(file);
    if (task !== 'ner' || config.task !== 'ner') throw new FormatError(`${runDir} is a ${task} run, not a ner run`);
    const tokenizer = loadTokenizer(path.join(dir, 'vocab.txt'));
    const labels = arch.labels as string[];
    checkArchitecture(file, arch, nerArch(config, tokenizer.vocabSize, labels));
    const model = new NerModel(config.model, config.head, tokenizer.vocabSize, labels.length, { seed: 0 });
    loadWeights(file, model);
    model.to(canonical).eval();
    return new NerPredictor(model, tokenizer, labels, config, dir);
  }

  /** Entities of each text: [start, end) in string indices, the type, the text span and the score. */
  predict(texts: readonly string[], batchSize = 32, threshold = 0): (DecodedEntity & { text: string })[][] {
    const records = encodeNer(texts.map((text) => ({ text, entities: [], line: 0 })), this.tokenizer, this.labels, this.config.data.max_length);
    const out: (DecodedEntity & { text: string })[][] = [];
    for (let i = 0; i < records.length; i += batchSize) {
      const chunk = records.slice(i, i + batchSize);
      const ents = tidy(() => {
        const b = nerBatch(chunk, this.labels.length, this.tokenizer.padId, this.model.device);
        return decodeBatch(this.model.forward(b.ids, b.mask), chunk, this.labels, b.lengths, threshold);
      });
      ents.forEach((list, k) => out.push(list.map((e) => ({ ...e, text: chunk[k]!.text.slice(e.start, e.end) }))));
    }
    return out;
  }

  /** P/R/F1 (overall and per type) on a labelled file. */
  async evaluate(file: string, format: NerFormat = this.config.data.format, batchSize = 32): Promise<{ overall: PRF; perType: Record<string, PRF>; records: number }> {
    const records = await readNerData(file, format);
    const encoded = encodeNer(records, this.tokenizer, this.labels, this.config.data.max_length);
    const f1 = scoreNer(this.model, encoded, this.labels, this.tokenizer.padId, batchSize);
    return { overall: f1.result(), perType: f1.perType(), records: records.length };
  }

  dispose(): void {
    this.model.dispose();
  }
}
