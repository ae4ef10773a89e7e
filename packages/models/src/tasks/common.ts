/**
 * What the training tasks share: the typed config sections (the resolved config of a run, as the
 * CLI validates and writes it to RUN/config.json), building the encoder, the optimizer and its
 * schedule, the tokenizer, the run's device, and starting or resuming a run directory.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { ArgumentError, KexueIOError, Philox, setNumThreads } from '@kexue/core-cuda';
import { AdamW, Lion, Tiger, hfParamClass, loadOptimizerState, piecewiseLinear, warmupCosine, warmupLinear, type Optimizer, type Schedule } from '@kexue/optimizers';

import { bertConfig, type BertConfig } from '../bert/config.js';
import { BertTokenizer } from '../tokenizers/bert.js';
import { CONFIG_FILE, assertRunDir, createRunDir } from '../train/run_dir.js';
import { checkpointDir, loadWeights, readTrainerState, OPTIMIZER_FILE, MODEL_FILE, type TrainerState } from '../train/checkpoint.js';
import { writeJsonAtomic } from '../train/files.js';
import type { ProgressReporter } from '../train/progress.js';
import type { Module } from '../nn/module.js';
import type { PrecisionName } from '../train/precision.js';

/** `model.*`: the encoder. */
export interface ModelConfig {
  kind: 'bert' | 'roformer';
  hidden: number;
  layers: number;
  heads: number;
  intermediate: number;
  dropout: number;
  /** vocab.txt; '' = the bundled bert-base-chinese vocabulary. */
  vocab: string;
  /** BERT's position table size (ignored by RoFormer). */
  max_positions: number;
}

/** `optim.*`: the optimizer and its learning-rate schedule (steps are optimizer updates). */
export interface OptimConfig {
  name: 'tiger' | 'lion' | 'adamw';
  /** 0 = the default of the optimizer (DEFAULT_LR). */
  lr: number;
  weight_decay: number;
  /** Global gradient-norm clipping; 0 = off. */
  clip_norm: number;
  schedule: 'constant' | 'linear' | 'cosine';
  /** Linear warm-up updates. */
  warmup: number;
}

/** `train.*`: the loop. */
export interface TrainConfig {
  batch_size: number;
  /** Epochs over the training data (used when steps is 0). */
  epochs: number;
  /** Optimizer updates in all; 0 = from epochs. */
  steps: number;
  grad_accum: number;
  seed: number;
  log_every: number;
  /** 0 = at the end of each epoch. */
  eval_every: number;
  /** 0 = only at evaluations and at the end. */
  save_every: number;
  /** Stop after this many updates with a checkpoint (continue with --resume); 0 = never. */
  stop_at: number;
  /** CPU threads; 0 = the build's default (KEXUE_NUM_THREADS or all cores). */
  threads: number;
}

/** The top-level mixed-precision keys (see train/precision.ts); absent = fp32, auto. */
export interface PrecisionConfig {
  /** Compute dtype: fp32, fp16 or bf16 (float32 master weights and optimizer state either way). */
  precision?: PrecisionName;
  /** 'auto' (dynamic for fp16, none otherwise), 'dynamic', 'none', or a constant scale > 0. */
  loss_scale?: string | number;
}

/** The top-level `device` key: where a run computes; absent = the CPU. */
export interface DeviceConfig {
  /** 'cpu', 'cuda' (GPU 0) or 'cuda:N'. */
  device?: string;
}

/** The learning rates used when optim.lr is 0, chosen for small models trained from scratch. */
export const DEFAULT_LR: Readonly<Record<OptimConfig['name'], number>> = { tiger: 2e-3, lion: 3e-4, adamw: 1e-3 };

/** The bundled vocabulary (Google's bert-base-chinese, 21,128 tokens). */
export const BUNDLED_VOCAB = fileURLToPath(new URL('../../vocab/bert-base-chinese/vocab.txt', import.meta.url));

/** Where the run goes and how it reports. */
export interface RunOptions {
  /** The run directory: fresh (created; must not hold anything) or, with resume, an existing run. */
  runDir: string;
  resume: boolean;
  progress: ProgressReporter;
  /** Relative paths in the config are resolved against this (default process.cwd()). */
  cwd?: string;
}

/** A path of the config resolved against the working directory. */
export function resolvePath(p: string, cwd = process.cwd()): string {
  return path.resolve(cwd, p);
}

/** The vocabulary file of a model config. */
export function vocabFile(c: ModelConfig, cwd?: string): string {
  return c.vocab === '' ? BUNDLED_VOCAB : resolvePath(c.vocab, cwd);
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
  });
}

/** The encoder part of an architecture record (what must match to load weights). */
export function encoderArch(c: ModelConfig, vocabSize: number): Record<string, unknown> {
  return { 'model.kind': c.kind, 'model.hidden': c.hidden, 'model.layers': c.layers, 'model.heads': c.heads, 'model.intermediate': c.intermediate, vocab_size: vocabSize };
}

/** Loads the tokenizer of a vocab file (lowercasing, as Google's Chinese vocabulary expects). */
export function loadTokenizer(file: string): BertTokenizer {
  return BertTokenizer.fromVocab(file, { lowercase: true });
}

/** The optimizer of a config for a run of `totalSteps` updates. */
export function buildOptimizer(c: OptimConfig, totalSteps: number): Optimizer {
  const lr = c.lr > 0 ? c.lr : DEFAULT_LR[c.name];
  let schedule: Schedule;
  if (c.schedule === 'constant') schedule = c.warmup > 0 ? piecewiseLinear({ [c.warmup]: 1 }) : { 0: 1 };
  else {
    if (c.warmup >= totalSteps) throw new ArgumentError(`optim.warmup (${c.warmup}) must be below the run's ${totalSteps} updates for a ${c.schedule} schedule`);
    schedule = (c.schedule === 'linear' ? warmupLinear : warmupCosine)({ warmupSteps: c.warmup, totalSteps });
  }
  const common = { learningRate: lr, weightDecay: c.weight_decay, schedule, ...(c.clip_norm > 0 ? { clipNorm: c.clip_norm } : {}) };
  if (c.name === 'tiger') return new Tiger({ ...common, paramClass: hfParamClass });
  if (c.name === 'lion') return new Lion(common);
  if (c.name === 'adamw') return new AdamW(common);
  throw new ArgumentError(`optim.name must be tiger, lion or adamw, got ${String(c.name)}`);
}

/** Updates in all: train.steps, or epochs × ceil(batches per epoch / grad_accum). */
export function totalSteps(t: TrainConfig, records: number): number {
  if (t.steps > 0) return t.steps;
  const batches = Math.ceil(records / t.batch_size);
  return Math.max(1, Math.ceil((t.epochs * batches) / t.grad_accum));
}

/** Sets the CPU thread count when the config asks for one. */
export function applyThreads(t: TrainConfig): void {
  if (t.threads > 0) setNumThreads(t.threads);
}

/** What resuming reads from the run's last checkpoint, before anything is written. */
export interface ResumePoint {
  dir: string;
  state: TrainerState;
}

/** The resume point of a run directory (E_IO / E_FORMAT when it has none or it is damaged). */
export function resumePoint(runDir: string): ResumePoint {
  assertRunDir(runDir);
  const dir = checkpointDir(runDir, 'last');
  return { dir, state: readTrainerState(dir) };
}

/** The dropout generator of a run, at the resume point's offset. */
export function dropoutGenerator(seed: number, resume: ResumePoint | null): Philox {
  return new Philox(seed, resume ? resume.state.dropoutOffset : 0);
}

/**
 * Loads the last checkpoint's weights (resume), moves the model (built on the CPU) to the run's
 * device, then loads the optimizer state there (resume) or creates the fresh run directory and
 * writes its config. Called once everything that can fail on bad input has been checked, so that
 * a failure leaves no half-made run and touches no existing one.
 */
export function startRun(o: RunOptions, config: unknown, model: Module, optimizer: Optimizer, resume: ResumePoint | null, device: string): Promise<void> | void {
  // checkpoints hold host tensors, whatever device wrote them: weights load where the model was
  // built and move with it; the optimizer state is read onto the device its steps will check
  if (resume) loadWeights(path.join(resume.dir, MODEL_FILE), model);
  model.to(device);
  if (resume) {
    loadOptimizerState(path.join(resume.dir, OPTIMIZER_FILE), optimizer, { device });
    return;
  }
  createRunDir(o.runDir);
  return writeJsonAtomic(path.join(o.runDir, CONFIG_FILE), config);
}

/** Throws E_IO naming the config key when a data file is missing. */
export function assertDataFile(file: string, key: string): void {
  if (!existsSync(file)) throw new KexueIOError(`${key}: data file ${file} does not exist`);
}
