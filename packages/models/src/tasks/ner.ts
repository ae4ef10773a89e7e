/**
 * The NER task: CLUENER JSON lines or BMES/BIO character files → tokenised batches with entity
 * spans as sparse GlobalPointer labels → a BERT/RoFormer encoder with a GlobalPointer or Efficient
 * GlobalPointer head → training (`kexue train ner`), entity-level P/R/F1 (`kexue eval ner`) and
 * entities with character offsets (`kexue predict ner`, NerPredictor).
 */
import path from 'node:path';

import { ArgumentError, DisposedError, FormatError, resolveDevice, tensor, tidy, type Tensor } from '@kexue/core-cuda';

import { BertModel, type ModelSeeds } from '../bert/model.js';
import { readCluener } from '../data/cluener.js';
import { Dataset, type Batch } from '../data/dataset.js';
import type { Entity, NerRecord } from '../data/entities.js';
import { TokenSpanMapper, entitiesToTokens } from '../data/spans.js';
import { readTaggedChars } from '../data/tagged.js';
import { readTextCorpus } from '../data/text.js';
import { EfficientGlobalPointer, GlobalPointer, sparseGlobalPointerLoss } from '../heads/global_pointer.js';
import { decodeSpans, spansToEntities, type DecodedEntity } from '../heads/decode.js';
import { EntityF1, type PRF, type TypePRF } from '../metrics/entity_f1.js';
import { Module, loadModule } from '../nn/module.js';
import { BertTokenizer } from '../tokenizers/bert.js';
import { Vocab } from '../tokenizers/vocab.js';
import { buildFromCheckpoint, checkArchitecture, checkpointDir, openRunCheckpoint, loadWeights, MODEL_FILE, readModelHeader, type Architecture } from '../train/checkpoint.js';
import { paddedLength } from '../train/compiled_step.js';
import { assertRunDir } from '../train/run_dir.js';
import { ServiceWorker, siblingModule } from '../worker/client.js';
import { packValue, unpackValue, type PackedTensor } from '../worker/tensors.js';
import { RequestError, choice, integer, pathKey, type ConfigOf } from './config.js';
import {
  FROM_SCRATCH_LR,
  checkEncoderKeys,
  demoDataKeys,
  encoderArch,
  encoderConfig,
  fromScratchKeys,
  loadTokenizer,
  vocabFile,
  type ModelConfig,
} from './sections.js';
import { RUN_DIR_OPTIONS, defineTask, evalDataOptions } from './task.js';

const NER_FORMATS = ['auto', 'cluener', 'bmes', 'bio', 'weibo'] as const;

/** The config keys of `kexue train ner`. */
export const NER_KEYS = {
  data: demoDataKeys({
    train: 'training file (default: the shipped CLUENER sample)',
    dev: "dev file, evaluated with P/R/F1 ('' = none)",
    formats: NER_FORMATS,
    format: 'auto: .jsonl/.json CLUENER, .bmes BMES, .bio BIO',
    maxLength: 'tokens per text, [CLS] and [SEP] included (longer texts are cut)',
  }),
  head: {
    kind: choice(['egp', 'gp'], 'egp', 'Efficient GlobalPointer or GlobalPointer'),
    size: integer(64, 'GlobalPointer head size d (even)', { min: 2 }),
  },
  ...fromScratchKeys(),
  init: pathKey('dir', '', "a run directory (ner or mlm) whose best checkpoint's encoder starts this run ('' = from scratch)"),
};

/** The resolved config of a NER run (RUN/config.json). */
export type NerConfig = ConfigOf<typeof NER_KEYS> & { task: string };

/** NER data formats: CLUENER JSON lines, BMES or BIO columns, Weibo's BIO with position digits. */
export type NerFormat = (typeof NER_FORMATS)[number];

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

/** A NER batch's tensors (the training step's inputs). */
export type NerInputs = {
  ids: Tensor;
  mask: Tensor;
  /** int32 [B, heads, P]: flattened spans i·n + j, padded with 0. */
  labels: Tensor;
};

/** Model inputs of a batch, padded to its longest record. */
export interface NerBatch extends NerInputs {
  lengths: number[];
}

/**
 * Builds padded tensors for a batch on a device (the model's; call inside tidy). The length n and
 * the spans per head P are the batch's longest, or rounded up to a multiple of `pad.multiple` (n at
 * most `pad.maxLength`), as a compiled run pads them.
 */
export function nerBatch(records: readonly EncodedNer[], heads: number, padId: number, device = 'cpu', pad: { multiple: number; maxLength: number } = { multiple: 1, maxLength: Infinity }): NerBatch {
  const B = records.length;
  const n = paddedLength(Math.max(...records.map((r) => r.ids.length)), pad.multiple, pad.maxLength);
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
  const P = paddedLength(Math.max(1, ...perHead.flatMap((h) => h.map((l) => l.length))), pad.multiple);
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
    const h = this.encoder.forward(ids, { attentionMask: mask, hiddenStates: false }).lastHiddenState;
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

/**
 * Entity-level P/R/F1 of a model on encoded records (batches in file order). Every gold entity
 * counts, those of a type the model does not know (flagged per type) and those cut off by
 * truncation included: the model cannot find them, so they are missed.
 */
export function scoreNer(model: NerModel, records: readonly EncodedNer[], labels: readonly string[], padId: number, batchSize: number): EntityF1 {
  const f1 = new EntityF1(labels);
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

/** Starts the encoder from another run's best checkpoint (a NER or an MLM run). */
function initEncoder(model: NerModel, config: NerConfig, vocabSize: number): void {
  assertRunDir(config.init);
  const file = path.join(checkpointDir(config.init, 'best'), MODEL_FILE);
  checkArchitecture(file, readModelHeader(file).arch, encoderArch(config.model, vocabSize));
  loadWeights(file, model.encoder, { prefix: `${config.model.kind}.`, partial: true });
}

const round6 = (x: number) => Number(x.toFixed(6));
const counts = (x: TypePRF) => ({
  precision: round6(x.precision),
  recall: round6(x.recall),
  f1: round6(x.f1),
  correct: x.correct,
  predicted: x.predicted,
  gold: x.gold,
  ...(x.unknown ? { unknown: true } : {}),
});

/** The NER task: `kexue train|eval|predict ner`. */
export const nerTask = defineTask({
  name: 'ner',
  summary: 'named entities with a GlobalPointer or Efficient GlobalPointer head on a BERT/RoFormer encoder',
  details: [
    'With no data key it trains a small RoFormer + Efficient GlobalPointer on the shipped CLUENER',
    'sample and prints its dev F1. Data: CLUENER JSON lines, BMES or BIO (data.format).',
    '',
    'Examples:',
    '  kexue train ner',
    '  kexue train ner data.train=train.bmes data.dev=dev.bmes head.kind=gp optim.name=adamw',
    '  kexue train ner init=runs/mlm --run-dir runs/ner-from-mlm',
    '  kexue train ner --precision bf16',
    '  kexue train ner --device cuda --precision bf16',
    '  kexue train ner --resume runs/ner-20250101-120000',
  ],
  config: NER_KEYS,
  recipe: FROM_SCRATCH_LR,
  best: { metric: 'f1', higherIsBetter: true },
  check(config) {
    checkEncoderKeys(config.model, config.data.max_length);
    if (config.head.size % 2 !== 0) throw new RequestError(`head.size (${config.head.size}) must be even: GlobalPointer applies RoPE to pairs of its dimensions`);
  },
  async setup(config, run) {
    const tokenizer = loadTokenizer(vocabFile(config.model));
    const trainRecords = await readNerData(config.data.train, config.data.format);
    const devRecords = config.data.dev ? await readNerData(config.data.dev, config.data.format) : [];
    // a resumed run keeps its labels (the data may have gained a type since)
    const labels = run.resume ? (run.resume.arch.labels as string[]) : entityTypes(trainRecords);
    if (labels.length === 0) throw new FormatError(`${config.data.train} has no entities to learn`);
    const train = new Dataset(encodeNer(trainRecords, tokenizer, labels, config.data.max_length));
    const dev = encodeNer(devRecords, tokenizer, labels, config.data.max_length);
    const model = new NerModel(config.model, config.head, tokenizer.vocabSize, labels.length, { seed: config.train.seed, dropoutRng: run.dropout });
    if (config.init !== '' && !run.resume) initEncoder(model, config, tokenizer.vocabSize);
    const pad = tokenizer.padId;
    return {
      model,
      data: train,
      inputs: ({ records }: Batch<EncodedNer>, padTo: number): NerInputs => {
        const { ids, mask, labels: spans } = nerBatch(records, labels.length, pad, run.device, { multiple: padTo, maxLength: config.data.max_length });
        return { ids, mask, labels: spans };
      },
      lossOf: ({ ids, mask, labels: spans }: NerInputs) => sparseGlobalPointerLoss(model.forward(ids, mask), spans),
      tokens: (records: EncodedNer[]) => records.reduce((n, r) => n + r.ids.length, 0),
      ...(dev.length ? { evaluate: async () => prf(scoreNer(model, dev, labels, pad, Math.max(config.train.batch_size, 32)).result()) } : {}),
      arch: nerArch(config, tokenizer.vocabSize, labels),
      files: { 'vocab.txt': vocabFile(config.model) },
      about: {
        model: `${config.model.kind} ${config.model.layers}x${config.model.hidden} + ${config.head.kind}`,
        data: { train: train.length, dev: dev.length, unit: 'records' },
        extra: `${labels.length} types`,
      },
    };
  },
  describeEval: (m) => `dev F1 ${m.f1!.toFixed(4)} (P ${m.precision!.toFixed(4)}, R ${m.recall!.toFixed(4)})`,
  commands: {
    eval: {
      summary: 'entity-level precision, recall and F1 of a trained NER run on a labelled file',
      details: [
        'Prints {"precision", "recall", "f1", "correct", "predicted", "gold", "records", "data"} as JSON;',
        'with --per-type, then one line per entity type {"type", ...}: each of the model\'s types, and',
        'with "unknown": true each type of the data the model does not know (its entities count as',
        'missed in the overall recall). Exact-match (start, end, type).',
        '',
        'Examples:',
        '  kexue eval ner runs/ner-20250101-120000 --data dev.jsonl --per-type',
        '  kexue eval ner runs/ner-20250101-120000 --device cuda',
      ],
      options: [
        ...evalDataOptions('a labelled file', NER_FORMATS),
        { name: 'per-type', type: 'boolean', description: 'also print P/R/F1 per entity type' },
        ...RUN_DIR_OPTIONS,
      ],
      async run(runDir, { options }, io) {
        const predictor = NerPredictor.load(runDir, options.checkpoint as 'best' | 'last', options.device as string, io.warn);
        try {
          const file = options.data !== undefined ? path.resolve(io.cwd, options.data as string) : predictor.config.data.dev;
          if (!file) throw new RequestError('the run has no data.dev: give --data FILE');
          const r = await predictor.evaluate(file, (options.format as NerFormat | undefined) ?? predictor.config.data.format);
          io.write(`${JSON.stringify({ ...counts(r.overall), records: r.records, data: file })}\n`);
          if (options.perType) for (const [type, x] of Object.entries(r.perType)) io.write(`${JSON.stringify({ type, ...counts(x) })}\n`);
        } finally {
          predictor.dispose();
        }
      },
    },
    predict: {
      summary: 'entities in texts, with character offsets, as JSON lines',
      details: [
        'One line per text: {"text", "entities": [{"start", "end", "type", "text", "score"}]}, where',
        '[start, end) are offsets in UTF-16 code units of the text (one per Chinese character),',
        'end exclusive. --input FILE reads one text a line (- for standard input). A text longer than',
        'the run\'s data.max_length tokens is cut: its line has "truncated": true, and a line on stderr',
        'counts them.',
        '',
        'Examples:',
        '  kexue predict ner runs/ner-20250101-120000 "浙商银行企业信贷部叶老桂博士"',
        '  kexue predict ner runs/ner-20250101-120000 --input texts.txt',
      ],
      options: [
        { name: 'input', type: 'string', short: 'i', valueName: 'FILE', description: "texts, one a line ('-' = standard input)" },
        ...RUN_DIR_OPTIONS,
        { name: 'threshold', type: 'number', valueName: 'X', description: 'score threshold (logit)', default: 0 },
      ],
      positionals: [{ name: 'texts', description: 'texts to analyse', variadic: true }],
      async run(runDir, { options, positionals }, io) {
        let texts = (positionals.texts as string[] | undefined) ?? [];
        const input = options.input as string | undefined;
        if (input !== undefined) {
          if (texts.length) throw new RequestError('give texts or --input, not both');
          // strict UTF-8, as the data readers read (E_FORMAT naming the file or standard input and the line)
          const lines = input === '-' ? (await io.readStdin()).split('\n') : (await readTextCorpus(path.resolve(io.cwd, input)).toArray()).map((d) => d.text);
          texts = lines.filter((l) => l.trim() !== '');
        }
        if (texts.length === 0) throw new RequestError('no text: give texts or --input FILE');
        const predictor = NerPredictor.load(runDir, options.checkpoint as 'best' | 'last', options.device as string, io.warn);
        try {
          let cut = 0;
          predictor.predict(texts, 32, options.threshold as number).forEach((ents, i) => {
            const entities = ents.map((e) => ({ start: e.start, end: e.end, type: e.type, text: e.text, score: Number(e.score.toFixed(4)) }));
            const truncated = predictor.truncates(texts[i]!);
            if (truncated) cut++;
            io.write(`${JSON.stringify({ text: texts[i], entities, ...(truncated ? { truncated } : {}) })}\n`);
          });
          if (cut > 0) {
            const [were, their] = cut === 1 ? ['was', 'its'] : ['were', 'their'];
            io.warn(
              `${cut} of ${texts.length} texts ${were} longer than data.max_length (${predictor.config.data.max_length} tokens) and ${were} cut; ${their} entities past the cut are not found`,
            );
          }
        } finally {
          predictor.dispose();
        }
      },
    },
  },
});

/** What a NER predictor's worker thread rebuilds it from (NerPredictor.predictAsync): copies, not files. */
export interface NerWorkerInit {
  config: NerConfig;
  labels: string[];
  checkpoint: string;
  device: string;
  vocab: string[];
  tokenizer: { lowercase: boolean; stripAccents: boolean; maxInputCharsPerWord: number };
  weights: Record<string, PackedTensor>;
}

/** An entity predict() finds: [start, end) in string indices, the type, the text span and the score. */
export type PredictedEntity = DecodedEntity & { text: string };

/**
 * A trained NER model loaded from a run directory, ready to evaluate and predict: predict() on the
 * calling thread, predictAsync() in a worker thread of its own (docs/models.md, "Serving").
 */
export class NerPredictor {
  readonly model: NerModel;
  readonly tokenizer: BertTokenizer;
  readonly labels: string[];
  readonly config: NerConfig;
  readonly checkpoint: string;
  /** predictAsync's worker thread (started by the first call). */
  #worker: ServiceWorker | null = null;
  #disposed = false;

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
   * for a device this machine lacks. The best of a run that has none is its last, which `warn`
   * is told.
   */
  static load(runDir: string, which: 'best' | 'last' = 'best', device = 'cpu', warn?: (message: string) => void): NerPredictor {
    const canonical = resolveDevice(device);
    const config = nerTask.readConfig(runDir);
    const { dir, file, arch } = openRunCheckpoint(runDir, which, 'ner', warn);
    const tokenizer = loadTokenizer(path.join(dir, 'vocab.txt'));
    const labels = arch.labels as string[];
    checkArchitecture(file, arch, nerArch(config, tokenizer.vocabSize, labels));
    const model = buildFromCheckpoint(file, () => new NerModel(config.model, config.head, tokenizer.vocabSize, labels.length, { seed: 0 }), { device: canonical }).eval();
    return new NerPredictor(model, tokenizer, labels, config, dir);
  }

  /** @internal The predictor predictAsync's worker thread serves (tasks/ner_worker.ts), made from workerInit's copies. */
  static fromWorkerInit(init: NerWorkerInit): NerPredictor {
    const tokenizer = new BertTokenizer(Vocab.fromTokens(init.vocab, `${init.checkpoint}/vocab.txt`), init.tokenizer);
    const weights = unpackValue(init.weights, init.device) as Record<string, Tensor>;
    const model = loadModule(() => new NerModel(init.config.model, init.config.head, tokenizer.vocabSize, init.labels.length, { seed: 0 }), weights).eval();
    return new NerPredictor(model, tokenizer, init.labels, init.config, init.checkpoint);
  }

  /** Entities of each text: [start, end) in string indices, the type, the text span and the score. */
  predict(texts: readonly string[], batchSize = 32, threshold = 0): PredictedEntity[][] {
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

  /**
   * predict() in a worker thread, so that the calling thread's event loop stays free: the same
   * entities, bit for bit. The first call starts the worker (or ready() does), which holds its own
   * copy of the model, made from this predictor's weights, config and vocabulary (no file is read
   * again). Calls queue in the worker and run one at a time, in order; each resolves with its own
   * texts' entities, or rejects with the KexueError predict() would have thrown. close() stops the
   * worker; dispose() does too.
   */
  async predictAsync(texts: readonly string[], batchSize = 32, threshold = 0): Promise<PredictedEntity[][]> {
    return this.#service().call<PredictedEntity[][]>('predict', [texts, batchSize, threshold]);
  }

  /** Starts predictAsync's worker now rather than at the first call; resolves once it has loaded the model. */
  async ready(): Promise<void> {
    return this.#service().start();
  }

  /**
   * Stops predictAsync's worker: calls not yet answered reject with E_DISPOSED; the promise resolves
   * once the worker has finished the call it was running and freed its copy of the model. predict()
   * is unaffected, and a later predictAsync starts a new worker.
   */
  close(): Promise<void> {
    return this.#worker?.close() ?? Promise.resolve();
  }

  #service(): ServiceWorker {
    if (this.#disposed) throw new DisposedError('this NerPredictor has been disposed');
    this.#worker ??= new ServiceWorker({
      what: 'the NER predictor',
      factory: { url: siblingModule(import.meta.url, 'ner_worker'), name: 'nerPredictorService' },
      init: () => this.#workerInit(),
    });
    return this.#worker;
  }

  /** Copies of what the worker needs (the weights read from their device now), and the buffers to transfer. */
  #workerInit(): { options: NerWorkerInit; transfer: ArrayBuffer[] } {
    const weights = packValue(this.model.stateDict(), 'weights');
    const t = this.tokenizer;
    return {
      options: {
        config: this.config,
        labels: this.labels,
        checkpoint: this.checkpoint,
        device: this.model.device,
        vocab: [...t.vocab.tokens],
        tokenizer: { lowercase: t.lowercase, stripAccents: t.stripAccents, maxInputCharsPerWord: t.maxInputCharsPerWord },
        weights: weights.value as Record<string, PackedTensor>,
      },
      transfer: weights.transfer,
    };
  }

  /** Whether `text` is longer than the run's data.max_length tokens, so that predict sees only its start. */
  truncates(text: string): boolean {
    const max = this.config.data.max_length;
    return this.tokenizer.encode(text, { maxLength: max + 1 }).ids.length > max;
  }

  /** P/R/F1 (overall and per type: the model's types, and those of the file it does not know, flagged `unknown`) on a labelled file. */
  async evaluate(file: string, format: NerFormat = this.config.data.format, batchSize = 32): Promise<{ overall: PRF; perType: Record<string, TypePRF>; records: number }> {
    const records = await readNerData(file, format);
    const encoded = encodeNer(records, this.tokenizer, this.labels, this.config.data.max_length);
    const f1 = scoreNer(this.model, encoded, this.labels, this.tokenizer.padId, batchSize);
    return { overall: f1.result(), perType: f1.perType(), records: records.length };
  }

  /** Frees the model, and stops predictAsync's worker (as close(), without waiting for it). */
  dispose(): void {
    this.#disposed = true;
    void this.close();
    this.model.dispose();
  }
}
