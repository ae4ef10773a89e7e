/**
 * The config sections training tasks share, declared once (keys, defaults, ranges, docs), with
 * what they build: the encoder (`model.*`), the optimizer and its schedule (`optim.*`), the loop
 * (`train.*`), mixed precision and the device. A task's spec is its own keys plus these.
 */
import { AdamW, Lion, Tiger, hfParamClass, piecewiseLinear, warmupCosine, warmupLinear, type Optimizer, type Schedule } from '@kexue/optimizers';

import { bertConfig, type BertConfig } from '../bert/config.js';
import { BertTokenizer } from '../tokenizers/bert.js';
import { BUNDLED_VOCABS } from '../tokenizers/bundled.js';
import { COMPILE_PAD_MULTIPLE } from '../train/compiled_step.js';
import { PrecisionPolicy } from '../train/precision.js';
import { RequestError, boolean, choice, integer, number, pathKey, string, type ConfigOf } from './config.js';
import { demoFile } from './demo.js';

/** The optimizers a task can train with, by config name. */
const OPTIMIZERS = { tiger: Tiger, lion: Lion, adamw: AdamW } as const;
export type OptimizerName = keyof typeof OPTIMIZERS;
const OPTIMIZER_NAMES = Object.keys(OPTIMIZERS) as [OptimizerName, ...OptimizerName[]];

/**
 * A task's learning rates where they differ from the optimizer's own default (used when optim.lr
 * is 0). Tiger's published default (1e-3) is for fine-tuning pretrained models; the demo's small
 * models trained from scratch use 2e-3 (docs/training.md).
 */
export type LearningRateRecipe = Partial<Record<OptimizerName, number>>;

/** The recipe of the NER and MLM tasks: small encoders trained from scratch. */
export const FROM_SCRATCH_LR: LearningRateRecipe = { tiger: 2e-3 };

/** The learning rate a run uses: optim.lr, or (0) the recipe's rate for the optimizer, or its own default. */
export function learningRate(c: { name: OptimizerName; lr: number }, recipe: LearningRateRecipe): number {
  return c.lr > 0 ? c.lr : (recipe[c.name] ?? OPTIMIZERS[c.name].defaults.learningRate);
}

/** Where a rate of learningRate() comes from, for --help. */
function rateSource(name: OptimizerName, recipe: LearningRateRecipe): string {
  const own = OPTIMIZERS[name].defaults.learningRate;
  const recipeRate = recipe[name];
  return recipeRate === undefined ? `${name}'s default` : `this task's rate for ${name}; its own default is ${own}`;
}

/** Device names: 'cpu', 'cuda' (GPU 0) or 'cuda:N'. Whether this machine has the device is checked when the run starts. */
export const DEVICE_NAME = { test: (v: string) => /^(cpu|cuda(:\d+)?)$/.test(v), expected: 'cpu, cuda or cuda:N' };

/** `model.*`: a BERT/RoFormer encoder. */
export function modelKeys(d: { hidden: number; layers: number; heads: number; intermediate: number }) {
  return {
    kind: choice(['roformer', 'bert'], 'roformer', 'encoder: RoFormer (RoPE) or BERT (absolute positions)'),
    attention: choice(['softmax', 'linear'], 'softmax', 'self-attention: softmax, or linear (elu+1 features, RoPE in the numerator only)'),
    hidden: integer(d.hidden, 'hidden size', { min: 2 }),
    layers: integer(d.layers, 'transformer layers', { min: 1 }),
    heads: integer(d.heads, 'attention heads (must divide model.hidden)', { min: 1 }),
    intermediate: integer(d.intermediate, 'feed-forward size', { min: 1 }),
    dropout: number(0.1, 'hidden-state dropout', { min: 0, max: 0.99 }),
    vocab: pathKey('file', '', "vocab.txt ('' = the bundled bert-base-chinese vocabulary)"),
    max_positions: integer(512, 'BERT position table size (RoFormer has none)', { min: 1 }),
  };
}
export type ModelConfig = ConfigOf<ReturnType<typeof modelKeys>>;

/** `optim.*`: the optimizer and its learning-rate schedule (steps are optimizer updates). */
export function optimKeys(schedule: 'constant' | 'linear' | 'cosine', recipe: LearningRateRecipe) {
  const rates = OPTIMIZER_NAMES.map((n) => `${n} ${learningRate({ name: n, lr: 0 }, recipe)}`).join(', ');
  return {
    name: choice(OPTIMIZER_NAMES, 'tiger', 'optimizer'),
    lr: number(0, `learning rate (0 = by optimizer: ${rates})`, {
      min: 0,
      showDefault: (v) => {
        const name = v['optim.name'] as OptimizerName;
        return `0 = ${learningRate({ name, lr: 0 }, recipe)} (${rateSource(name, recipe)})`;
      },
    }),
    weight_decay: number(0.01, 'decoupled weight decay', { min: 0 }),
    clip_norm: number(0, 'clip gradients to this global norm (0 = off)', { min: 0 }),
    schedule: choice(['constant', 'linear', 'cosine'], schedule, 'learning-rate schedule after the warm-up'),
    warmup: integer(0, 'linear warm-up, in updates', { min: 0 }),
  };
}
export type OptimConfig = ConfigOf<ReturnType<typeof optimKeys>>;

/** `train.*`: the loop. */
export function trainKeys(d: { batch: number; epochs: number; log: number }) {
  return {
    batch_size: integer(d.batch, 'records per micro-batch', { min: 1 }),
    epochs: number(d.epochs, 'epochs (used when train.steps is 0)', { min: 0 }),
    steps: integer(0, 'optimizer updates in all (0 = from train.epochs)', { min: 0 }),
    grad_accum: integer(1, 'micro-batches per update (gradients averaged)', { min: 1 }),
    seed: integer(42, 'seed of the weights, the shuffles, dropout and masking (below 2^53: Philox takes an exact integer)', { min: 0, max: Number.MAX_SAFE_INTEGER }),
    log_every: integer(d.log, 'write a metrics.jsonl train record every N updates', { min: 1 }),
    eval_every: integer(0, 'evaluate every N updates (0 = every epoch); always at the end', { min: 0 }),
    save_every: integer(0, 'save the last checkpoint every N updates (0 = at evaluations and the end)', { min: 0 }),
    stop_at: integer(0, 'stop after N updates with a checkpoint, to continue with --resume (0 = never)', { min: 0, resumable: true }),
    threads: integer(0, 'CPU threads (0 = KEXUE_NUM_THREADS or all cores; more than the cores only slows a run)', { min: 0, max: 256, resumable: true }),
    max_nonfinite: integer(10, 'stop with E_DIVERGED after this many updates in a row with a non-finite loss', { min: 1, resumable: true }),
    compile: boolean(
      false,
      "run each update (forward, backward, clipping, optimizer) as kx.compile'd programs, traced once per padded batch shape (train.pad_multiple; train records count the traces); not with loss scaling or --nproc",
    ),
    pad_multiple: integer(
      0,
      `pad batch lengths and counts up to a multiple of N, at most the max length (0 = ${COMPILE_PAD_MULTIPLE} with train.compile, else none); padding changes the dropout masks`,
      { min: 0 },
    ),
  };
}
export type TrainConfig = ConfigOf<ReturnType<typeof trainKeys>>;

/**
 * The rules of train.compile (RequestError naming the keys and why): a compiled update has no loss
 * scaler, which reads the gradients' finiteness on the host to skip an update and change its scale.
 * Data-parallel runs are refused where the job is known (defineTask's train, and before mpirun).
 */
export function checkCompileKeys(c: { train: TrainConfig; precision: string; loss_scale: string }): void {
  if (!c.train.compile) return;
  const policy = PrecisionPolicy.fromConfig(c);
  if (policy.lossScale !== null) {
    throw new RequestError(
      `train.compile=true cannot run with loss scaling (precision=${c.precision}, loss_scale=${c.loss_scale}: a ${policy.lossScale === 'dynamic' ? 'dynamic' : 'constant'} loss scale): the scaler reads the gradients' finiteness on the host at every update; use precision=bf16 or fp32, or loss_scale=none, or train.compile=false`,
    );
  }
}

/** Why train.compile cannot run data-parallel (RequestError's message). */
export const COMPILE_NOT_DATA_PARALLEL =
  'train.compile=true cannot run data-parallel (--nproc, mpirun): the gradients\' all-reduce waits on the other processes on the host in the middle of the update; train on one process or set train.compile=false';

/** The multiple a run pads its batches to (TrainPlan.inputs' padTo): train.pad_multiple, or its default for train.compile. */
export function padMultiple(t: TrainConfig): number {
  return t.pad_multiple > 0 ? t.pad_multiple : t.compile ? COMPILE_PAD_MULTIPLE : 1;
}

/** The top-level keys every training task has: mixed precision (docs/training.md) and the device. */
export const RUN_KEYS = {
  precision: choice(['fp32', 'fp16', 'bf16'], 'fp32', 'compute dtype; fp16/bf16 keep float32 master weights and optimizer state'),
  loss_scale: string('auto', 'loss scaling: auto (dynamic for fp16, none otherwise), dynamic, none, or a constant scale', {
    rule: {
      test: (v) => ['auto', 'dynamic', 'none'].includes(v) || (v.trim() !== '' && Number(v) > 0 && Number.isFinite(Number(v))),
      expected: 'auto, dynamic, none or a number > 0',
    },
  }),
  device: string('cpu', "where the run computes: cpu, cuda (GPU 0) or cuda:N; a resume keeps the run's unless given", {
    rule: DEVICE_NAME,
    resumable: true,
    keptOnResume: true,
  }),
};

/**
 * `data.train` and `data.dev` (default: the CLUENER sample shipped in packages/models/demo/),
 * `data.format` and `data.max_length`, described for a task.
 */
export function demoDataKeys<const F extends readonly [string, ...string[]]>(doc: { train: string; dev: string; formats: F; format: string; maxLength: string }) {
  return {
    train: pathKey('file', demoFile('cluener/train.jsonl'), doc.train),
    dev: pathKey('file', demoFile('cluener/dev.jsonl'), doc.dev),
    format: choice(doc.formats, 'auto', doc.format),
    max_length: integer(64, doc.maxLength, { min: 3 }),
  };
}

/** The shared sections of the NER and MLM tasks: a small encoder trained from scratch (FROM_SCRATCH_LR), the loop, the run keys. */
export function fromScratchKeys() {
  return {
    model: modelKeys({ hidden: 128, layers: 2, heads: 4, intermediate: 512 }),
    optim: optimKeys('constant', FROM_SCRATCH_LR),
    train: trainKeys({ batch: 32, epochs: 10, log: 20 }),
    ...RUN_KEYS,
  };
}

/** The rules between keys of an encoder config (RequestError naming the keys and why). */
export function checkEncoderKeys(m: ModelConfig, maxLength: number): void {
  if (m.hidden % m.heads !== 0) throw new RequestError(`model.heads (${m.heads}) must divide model.hidden (${m.hidden}): each head takes hidden/heads dimensions`);
  if (m.kind === 'roformer' && (m.hidden / m.heads) % 2 !== 0) {
    throw new RequestError(`model.hidden / model.heads (${m.hidden / m.heads}) must be even for RoFormer: RoPE rotates pairs of dimensions`);
  }
  if (m.kind === 'bert' && maxLength > m.max_positions) {
    throw new RequestError(`data.max_length (${maxLength}) must be at most model.max_positions (${m.max_positions}): BERT has a position embedding for each of those positions only`);
  }
}

/** The vocabulary file of a model config (model.vocab is already absolute when set). */
export function vocabFile(c: ModelConfig): string {
  return c.vocab === '' ? BUNDLED_VOCABS.bertBaseChinese : c.vocab;
}

/** Loads the tokenizer of a vocab file (lowercasing, as Google's Chinese vocabulary expects). */
export function loadTokenizer(file: string): BertTokenizer {
  return BertTokenizer.fromVocab(file, { lowercase: true });
}

/** The encoder config for a vocabulary size. */
export function encoderConfig(c: ModelConfig, vocabSize: number): BertConfig {
  return bertConfig({
    kind: c.kind,
    vocabSize,
    hiddenSize: c.hidden,
    numLayers: c.layers,
    numHeads: c.heads,
    intermediateSize: c.intermediate,
    hiddenDropout: c.dropout,
    maxPositions: c.max_positions,
    attention: c.attention,
  });
}

/**
 * The encoder part of an architecture record (what must match to load weights). model.attention
 * is recorded when it is 'linear' only, so that runs from before the key (softmax) still match.
 */
export function encoderArch(c: ModelConfig, vocabSize: number): Record<string, unknown> {
  return {
    'model.kind': c.kind,
    'model.hidden': c.hidden,
    'model.layers': c.layers,
    'model.heads': c.heads,
    'model.intermediate': c.intermediate,
    ...(c.attention === 'linear' ? { 'model.attention': c.attention } : {}),
    vocab_size: vocabSize,
  };
}

/** The optimizer of a config for a run of `totalSteps` updates. */
export function buildOptimizer(c: OptimConfig, totalSteps: number, recipe: LearningRateRecipe): Optimizer {
  let schedule: Schedule;
  if (c.schedule === 'constant') schedule = c.warmup > 0 ? piecewiseLinear({ [c.warmup]: 1 }) : { 0: 1 };
  else {
    if (c.warmup >= totalSteps) throw new RequestError(`optim.warmup (${c.warmup}) must be below the run's ${totalSteps} updates for a ${c.schedule} schedule`);
    schedule = (c.schedule === 'linear' ? warmupLinear : warmupCosine)({ warmupSteps: c.warmup, totalSteps });
  }
  const options = { learningRate: learningRate(c, recipe), weightDecay: c.weight_decay, schedule, ...(c.clip_norm > 0 ? { clipNorm: c.clip_norm } : {}) };
  return c.name === 'tiger' ? new Tiger({ ...options, paramClass: hfParamClass }) : new OPTIMIZERS[c.name](options);
}

/** Updates in all: train.steps, or epochs × ceil(batches per epoch / grad_accum). */
export function totalSteps(t: TrainConfig, records: number): number {
  if (t.steps > 0) return t.steps;
  const batches = Math.ceil(records / t.batch_size);
  return Math.max(1, Math.ceil((t.epochs * batches) / t.grad_accum));
}
