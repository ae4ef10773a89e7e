/**
 * Checkpoints of a training run, written atomically. Each checkpoint is a directory
 * `RUN/checkpoints/step-N/` holding
 *
 *   model.safetensors      the weights (metadata: kexue.task, kexue.arch = the architecture as JSON)
 *   optimizer.safetensors  the optimizer's state and counters (saveOptimizerState)
 *   trainer.json           step, data position, dropout generator offset, best metric, running averages,
 *                          the loss scaler's state (mixed precision)
 *   config.json            the run's resolved config
 *   vocab.txt …            the tokenizer files
 *
 * It is filled under a temporary name and renamed into place; then `RUN/checkpoints.json` (which
 * names the last and the best checkpoint) is replaced atomically, and only after that are the
 * checkpoints it no longer names removed. A crash at any moment leaves the previous index and the
 * checkpoints it names intact.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync, renameSync } from 'node:fs';
import path from 'node:path';

import { FormatError, KexueIOError, io, type Tensor } from '@kexue/core-cuda';
import { saveOptimizerState, type LossScalerState, type Optimizer } from '@kexue/optimizers';

import type { Position } from '../data/dataset.js';
import { describeProblems, type Module } from '../nn/module.js';
import { readJson, writeJsonAtomic } from './files.js';
import { CHECKPOINTS_DIR, INDEX_FILE } from './run_dir.js';

export const MODEL_FILE = 'model.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TRAINER_FILE = 'trainer.json';
const TASK_KEY = 'kexue.task';
const ARCH_KEY = 'kexue.arch';

/** Everything besides weights and optimizer state that resuming needs. */
export interface TrainerState {
  /** Optimizer updates done. */
  step: number;
  /** Where the training data loader stands. */
  position: Position;
  /** Offset of the dropout generator (Philox) after the last update. */
  dropoutOffset: number;
  /** Real (non-padding) tokens trained on. */
  tokens: number;
  /** Training time so far, evaluation excluded (ms). */
  elapsedMs: number;
  /** The running sums since the last logging step. */
  window: { lossSum: number; updates: number; tokens: number; ms: number };
  /** The best evaluation so far. */
  best: { metric: string; value: number; step: number } | null;
  /** The loss scaler's scale and good-step count (mixed precision with loss scaling only). */
  lossScaler?: LossScalerState;
  /** Updates skipped for non-finite gradients so far (with a dynamic loss scaler only). */
  skippedSteps?: number;
}

export interface CheckpointRef {
  step: number;
  /** Relative to the run directory. */
  dir: string;
}

/** The contents of checkpoints.json. */
export interface CheckpointIndex {
  last: CheckpointRef;
  best: (CheckpointRef & { metric: string; value: number }) | null;
}

/** The architecture of a model, flat: `{'model.hidden': 128, 'head.kind': 'egp', labels: [...]}`. */
export type Architecture = Record<string, unknown>;

export interface CheckpointContent {
  task: string;
  arch: Architecture;
  weights: Record<string, Tensor>;
  optimizer: Optimizer;
  state: TrainerState;
  config: unknown;
  /** Files copied in, by name in the checkpoint → source path (tokenizer files). */
  files: Record<string, string>;
}

/** Reads RUN/checkpoints.json (E_IO missing, E_FORMAT malformed). */
export function readCheckpointIndex(runDir: string): CheckpointIndex {
  const file = path.join(runDir, INDEX_FILE);
  const v = readJson(file, 'checkpoint index') as CheckpointIndex;
  if (!v || typeof v !== 'object' || !v.last || typeof v.last.dir !== 'string' || typeof v.last.step !== 'number') {
    throw new FormatError(`checkpoint index ${file} has no "last" checkpoint`);
  }
  return v;
}

/** The directory of the last or the best checkpoint of a run (the last when there is no best). */
export function checkpointDir(runDir: string, which: 'last' | 'best'): string {
  const index = readCheckpointIndex(runDir);
  const ref = which === 'best' && index.best ? index.best : index.last;
  const dir = path.join(runDir, ref.dir);
  if (!existsSync(path.join(dir, MODEL_FILE))) throw new KexueIOError(`checkpoint ${dir} has no ${MODEL_FILE}`);
  return dir;
}

/** Reads trainer.json of a checkpoint. */
export function readTrainerState(dir: string): TrainerState {
  const s = readJson(path.join(dir, TRAINER_FILE), 'trainer state') as TrainerState;
  if (!s || typeof s.step !== 'number' || !s.position || typeof s.dropoutOffset !== 'number') {
    throw new FormatError(`${path.join(dir, TRAINER_FILE)} is not a kexue trainer state`);
  }
  return s;
}

/**
 * Writes a checkpoint for `content.state.step` and makes it the last one (and the best one when
 * `best` is given); returns the new index.
 */
export async function writeCheckpoint(runDir: string, content: CheckpointContent, best: { metric: string; value: number } | null): Promise<CheckpointIndex> {
  const step = content.state.step;
  const name = `step-${String(step).padStart(6, '0')}`;
  const root = path.join(runDir, CHECKPOINTS_DIR);
  const rel = path.join(CHECKPOINTS_DIR, name);
  const final = path.join(runDir, rel);
  const tmp = path.join(root, `.tmp-${name}-${process.pid}`);
  const previous = existsSync(path.join(runDir, INDEX_FILE)) ? readCheckpointIndex(runDir) : null;
  try {
    mkdirSync(root, { recursive: true });
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    await io.saveSafetensors(path.join(tmp, MODEL_FILE), content.weights, { [TASK_KEY]: content.task, [ARCH_KEY]: JSON.stringify(content.arch) });
    await saveOptimizerState(path.join(tmp, OPTIMIZER_FILE), content.optimizer);
    await writeJsonAtomic(path.join(tmp, TRAINER_FILE), content.state);
    await writeJsonAtomic(path.join(tmp, 'config.json'), content.config);
    for (const [n, src] of Object.entries(content.files)) copyFileSync(src, path.join(tmp, n));
    // a directory of this name not named by the index is debris of an interrupted write
    const named = previous && (previous.last.dir === rel || previous.best?.dir === rel);
    if (named) throw new KexueIOError(`checkpoint ${final} already exists`);
    rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    if (err instanceof KexueIOError) throw err;
    throw new KexueIOError(`cannot write checkpoint ${final}: ${(err as Error).message}`, { cause: err });
  }
  const index: CheckpointIndex = {
    last: { step, dir: rel },
    best: best ? { step, dir: rel, ...best } : (previous?.best ?? null),
  };
  await writeJsonAtomic(path.join(runDir, INDEX_FILE), index);
  pruneCheckpoints(runDir, index);
  return index;
}

/** Removes checkpoint directories (and temporary debris) the index does not name. */
function pruneCheckpoints(runDir: string, index: CheckpointIndex): void {
  const keep = new Set([index.last.dir, index.best?.dir].filter(Boolean).map((d) => path.basename(d!)));
  const root = path.join(runDir, CHECKPOINTS_DIR);
  for (const entry of readdirSync(root)) {
    if (!keep.has(entry) && (entry.startsWith('step-') || entry.startsWith('.tmp-'))) rmSync(path.join(root, entry), { recursive: true, force: true });
  }
}

/** The task and architecture recorded in a model.safetensors. */
export function readModelHeader(file: string): { task: string; arch: Architecture } {
  const header = io.readSafetensorsHeader(file);
  const task = header.metadata[TASK_KEY];
  const arch = header.metadata[ARCH_KEY];
  if (task === undefined || arch === undefined) throw new FormatError(`${file} is not a kexue checkpoint (no ${TASK_KEY} / ${ARCH_KEY} metadata)`);
  try {
    return { task, arch: JSON.parse(arch) as Architecture };
  } catch {
    throw new FormatError(`${file}: ${ARCH_KEY} metadata is not JSON`);
  }
}

/**
 * Checks that a checkpoint's architecture matches: every key of `expected` (or only `keys`) must
 * hold the same value. E_FORMAT naming each difference otherwise.
 */
export function checkArchitecture(file: string, got: Architecture, expected: Architecture, keys: readonly string[] = Object.keys(expected)): void {
  const diffs = keys.filter((k) => JSON.stringify(got[k]) !== JSON.stringify(expected[k]));
  if (diffs.length) {
    const show = (v: unknown) => (v === undefined ? '(absent)' : JSON.stringify(v));
    throw new FormatError(
      `checkpoint ${file} has another architecture: ${diffs.map((k) => `${k} is ${show(got[k])} there, ${show(expected[k])} here`).join('; ')}`,
    );
  }
}

/**
 * Loads weights into a module. Strict: every parameter present with its shape (E_FORMAT naming
 * each problem otherwise). With `partial`, only the module's parameters are required and extra
 * entries (another head) are ignored.
 */
export function loadWeights(file: string, module: Module, options: { prefix?: string; partial?: boolean } = {}): void {
  const tensors = io.loadSafetensors(file);
  try {
    const report = module.loadStateDict(tensors, { strict: false, prefix: options.prefix ?? '' });
    const problems = { ...report, unexpected: options.partial ? [] : report.unexpected };
    if (problems.missing.length || problems.unexpected.length || problems.mismatched.length) {
      throw new FormatError(`checkpoint ${file} does not fit this model:${describeProblems(problems)}`);
    }
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}
