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
 *   checksums.json         the size and SHA-256 of each file above, written last
 *
 * It is filled under a temporary name and renamed into place; then `RUN/checkpoints.json` (which
 * names the last and the best checkpoint) is replaced atomically, and only after that are the
 * checkpoints it no longer names removed. A crash at any moment leaves the previous index and the
 * checkpoints it names intact.
 *
 * Reading verifies what is read against checksums.json (a mismatch is E_FORMAT naming the file:
 * corrupt since it was written): checkpointDir checks that every recorded file has its size and
 * hashes the small ones, loadWeights hashes model.safetensors in the pass that loads it (and refuses
 * NaN or ±Infinity weights), readTrainerState hashes trainer.json and optimizer.safetensors (which
 * loadOptimizerState, knowing nothing of checkpoints, then reads). A checkpoint without
 * checksums.json (written before it existed) loads unverified, as it always did.
 */
import { createHash } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, rmSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';

import { FormatError, KexueIOError, io, ioError, type Tensor } from '@kexue/core-cuda';
import { saveOptimizerState, type LossScalerState, type Optimizer } from '@kexue/optimizers';

import type { Position } from '../data/dataset.js';
import { loadModule, misfit, type Module } from '../nn/module.js';
import { readJson, writeJsonAtomic } from './files.js';
import { CHECKPOINTS_DIR, INDEX_FILE } from './run_dir.js';

export const MODEL_FILE = 'model.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TRAINER_FILE = 'trainer.json';
export const CHECKSUMS_FILE = 'checksums.json';
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

/** checksums.json: what each file of a checkpoint held when it was written. */
export interface ChecksumManifest {
  algorithm: 'sha256';
  /** By file name in the checkpoint directory: its size in bytes and its SHA-256 (lowercase hex). */
  files: Record<string, { bytes: number; sha256: string }>;
}

const HASH_CHUNK = 1 << 20;

/** The size and SHA-256 of a file, read in chunks into one reused buffer (E_IO when unreadable). */
export function sha256File(file: string): { bytes: number; sha256: string } {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw ioError(`cannot read ${file}`, err);
  }
  try {
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(HASH_CHUNK);
    let bytes = 0;
    for (let n; (n = readSync(fd, buf, 0, HASH_CHUNK, bytes)) > 0; bytes += n) hash.update(buf.subarray(0, n));
    return { bytes, sha256: hash.digest('hex') };
  } catch (err) {
    throw ioError(`cannot read ${file}`, err);
  } finally {
    closeSync(fd);
  }
}

const corrupt = (file: string, why = 'its SHA-256 does not match the one recorded when it was written') => new FormatError(`checkpoint ${file} is corrupt: ${why}`);

/**
 * The checksums.json of a checkpoint directory, or null when it has none (a checkpoint written
 * before checksums were recorded). E_FORMAT when it is malformed.
 */
export function readChecksums(dir: string): ChecksumManifest | null {
  const file = path.join(dir, CHECKSUMS_FILE);
  if (!existsSync(file)) return null;
  const m = readJson(file, 'checkpoint checksums') as ChecksumManifest;
  const ok =
    m !== null &&
    typeof m === 'object' &&
    m.algorithm === 'sha256' &&
    m.files !== null &&
    typeof m.files === 'object' &&
    Object.values(m.files).every((f) => f !== null && typeof f === 'object' && Number.isSafeInteger(f.bytes) && typeof f.sha256 === 'string' && /^[0-9a-f]{64}$/.test(f.sha256));
  if (!ok) throw new FormatError(`checkpoint checksums ${file} are malformed (expected {"algorithm": "sha256", "files": {name: {"bytes", "sha256"}}})`);
  return m;
}

/**
 * What `name` held when its checkpoint was written, after checking that the file still has that
 * size (E_FORMAT corrupt otherwise; E_IO when it is missing); null when there is no record.
 */
function recorded(dir: string, name: string, manifest = readChecksums(dir)): { bytes: number; sha256: string } | null {
  const entry = manifest?.files[name];
  if (!entry) return null;
  const file = path.join(dir, name);
  let size: number;
  try {
    size = statSync(file).size;
  } catch (err) {
    throw ioError(`checkpoint ${dir} has no ${name} (it was recorded when the checkpoint was written)`, err);
  }
  if (size !== entry.bytes) throw corrupt(file, `it has ${size} bytes, ${entry.bytes} were recorded when it was written`);
  return entry;
}

/** Checks `bytes` (the contents of `name`, already read) against the checkpoint's record. */
function checkBytes(dir: string, name: string, bytes: Uint8Array): void {
  const entry = recorded(dir, name);
  if (entry && createHash('sha256').update(bytes).digest('hex') !== entry.sha256) throw corrupt(path.join(dir, name));
}

/**
 * Verifies one file of a checkpoint against its checksums.json: its size, then its SHA-256 (one
 * streaming read). E_FORMAT naming the file when it differs; nothing to check without a record.
 */
export function verifyCheckpointFile(dir: string, name: string): void {
  const entry = recorded(dir, name);
  if (entry && sha256File(path.join(dir, name)).sha256 !== entry.sha256) throw corrupt(path.join(dir, name));
}

/**
 * Verifies a checkpoint directory against its checksums.json: every recorded file present with its
 * size, and the SHA-256 of each (but those in `skipHash`, which their readers hash as they read
 * them). False when the checkpoint has no checksums (nothing verified), true otherwise.
 */
export function verifyCheckpoint(dir: string, options: { skipHash?: readonly string[] } = {}): boolean {
  const manifest = readChecksums(dir);
  if (!manifest) return false;
  for (const name of Object.keys(manifest.files).sort()) {
    const entry = recorded(dir, name, manifest)!;
    if (!options.skipHash?.includes(name) && sha256File(path.join(dir, name)).sha256 !== entry.sha256) throw corrupt(path.join(dir, name));
  }
  return true;
}

/**
 * `err` from reading `name` in `dir`, or the corruption that explains it: a file that no longer
 * parses is most often one whose bytes changed, and saying so beats a header complaint.
 */
function explain(dir: string, name: string, err: unknown): unknown {
  if (!(err instanceof FormatError)) return err;
  try {
    verifyCheckpointFile(dir, name);
  } catch (corruption) {
    if (corruption instanceof FormatError) return corruption;
  }
  return err;
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

/**
 * The directory of the last or the best checkpoint of a run (the last when there is no best, which
 * `warn`, when given, is told with its step), verified: every file its checksums.json records is
 * there with its size, and the small ones (trainer.json, config.json, vocab.txt, …) have their
 * SHA-256. The tensor files are hashed by their readers as they read them (loadWeights,
 * readTrainerState), so each is read once for it.
 */
export function checkpointDir(runDir: string, which: 'last' | 'best', warn?: (message: string) => void): string {
  const index = readCheckpointIndex(runDir);
  if (which === 'best' && !index.best) warn?.(`the run has no best checkpoint (it was never evaluated): using the last, step ${index.last.step}`);
  const ref = which === 'best' && index.best ? index.best : index.last;
  const dir = path.join(runDir, ref.dir);
  if (!existsSync(path.join(dir, MODEL_FILE))) throw new KexueIOError(`checkpoint ${dir} has no ${MODEL_FILE}`);
  verifyCheckpoint(dir, { skipHash: [MODEL_FILE, OPTIMIZER_FILE] });
  return dir;
}

/**
 * The best or last checkpoint of a run, for a predictor or an evaluation: its directory, its model
 * file, and the task and architecture recorded there (E_FORMAT when `task` is given and the run is
 * another task's; null takes a run of any task).
 */
export function openRunCheckpoint(
  runDir: string,
  which: 'last' | 'best',
  task: string | null,
  warn?: (message: string) => void,
): { dir: string; file: string; task: string; arch: Architecture } {
  const dir = checkpointDir(runDir, which, warn);
  const file = path.join(dir, MODEL_FILE);
  const header = readModelHeader(file);
  if (task !== null && header.task !== task) throw new FormatError(`${runDir} is a ${header.task} run, not a ${task} run`);
  return { dir, file, ...header };
}

/**
 * Reads trainer.json of a checkpoint, for a resume: it and optimizer.safetensors, the other file
 * only a resume reads (through loadOptimizerState, which knows nothing of checkpoints), are
 * verified against the checkpoint's checksums (E_FORMAT naming a corrupt one).
 */
export function readTrainerState(dir: string): TrainerState {
  const file = path.join(dir, TRAINER_FILE);
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw ioError(`cannot read trainer state ${file}`, err);
  }
  checkBytes(dir, TRAINER_FILE, bytes);
  let s: TrainerState;
  try {
    s = JSON.parse(bytes.toString('utf8')) as TrainerState;
  } catch (err) {
    throw new FormatError(`trainer state ${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (!s || typeof s.step !== 'number' || !s.position || typeof s.dropoutOffset !== 'number') {
    throw new FormatError(`${file} is not a kexue trainer state`);
  }
  verifyCheckpointFile(dir, OPTIMIZER_FILE);
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
    io.makeDirectory(root, `cannot write checkpoint ${final}`);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    await io.saveSafetensors(path.join(tmp, MODEL_FILE), content.weights, { [TASK_KEY]: content.task, [ARCH_KEY]: JSON.stringify(content.arch) });
    await saveOptimizerState(path.join(tmp, OPTIMIZER_FILE), content.optimizer);
    await writeJsonAtomic(path.join(tmp, TRAINER_FILE), content.state);
    await writeJsonAtomic(path.join(tmp, 'config.json'), content.config);
    for (const [n, src] of Object.entries(content.files)) copyFileSync(src, path.join(tmp, n));
    // the checksums of what is on disk now, written last, before the rename publishes the lot
    const files: ChecksumManifest['files'] = {};
    for (const n of readdirSync(tmp).sort()) if (n !== CHECKSUMS_FILE) files[n] = sha256File(path.join(tmp, n));
    await writeJsonAtomic(path.join(tmp, CHECKSUMS_FILE), { algorithm: 'sha256', files } satisfies ChecksumManifest);
    // a directory of this name not named by the index is debris of an interrupted write
    const named = previous && (previous.last.dir === rel || previous.best?.dir === rel);
    if (named) throw new KexueIOError(`checkpoint ${final} already exists`);
    rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    if (err instanceof KexueIOError) throw err;
    throw ioError(`cannot write checkpoint ${final}`, err);
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
  let header: io.SafetensorsHeader;
  try {
    header = io.readSafetensorsHeader(file);
  } catch (err) {
    throw explain(path.dirname(file), path.basename(file), err);
  }
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
 * entries (another head) are ignored. The file is verified as it is read (readCheckpointWeights).
 */
export function loadWeights(file: string, module: Module, options: { prefix?: string; partial?: boolean } = {}): void {
  const tensors = readCheckpointWeights(file);
  try {
    const problems = misfit(module.loadStateDict(tensors, { strict: false, prefix: options.prefix ?? '' }), options.partial ?? false);
    if (problems) throw new FormatError(`checkpoint ${file} does not fit this model:${problems}`);
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}

/**
 * Builds a model straight from a checkpoint's weights (loadModule): `build` constructs it with no
 * initialiser running, and the tensors read, on `device`, become its parameters with no further
 * copy. Strict as loadWeights (E_FORMAT naming each problem, nothing built); the file is verified
 * as it is read (readCheckpointWeights).
 */
export function buildFromCheckpoint<M extends Module>(file: string, build: () => M, options: { device?: string } = {}): M {
  return loadModule(build, readCheckpointWeights(file, options.device), { source: `checkpoint ${file}` });
}

/**
 * The tensors of a checkpoint's weights file, made on `device` (default the CPU) and owned by the
 * caller. In the same pass as the read, the file is checked against its checkpoint's
 * checksums.json when there is one (E_FORMAT: corrupt) and its floating tensors for NaN and
 * ±Infinity (E_FORMAT naming the first bad tensor: weights of a run that diverged).
 */
function readCheckpointWeights(file: string, device = 'cpu'): Record<string, Tensor> {
  const dir = path.dirname(file);
  const name = path.basename(file);
  const expected = recorded(dir, name);
  let loaded: io.SafetensorsFile;
  try {
    loaded = io.readSafetensors(file, { sha256: expected !== null, findNonFinite: true, device });
  } catch (err) {
    throw explain(dir, name, err);
  }
  try {
    if (expected && loaded.sha256 !== expected.sha256) throw corrupt(file);
    const bad = loaded.nonFinite;
    if (bad) {
      throw new FormatError(
        `checkpoint ${file} holds weights that are not finite: tensor '${bad.tensor}' has ${bad.value} at element ${bad.index} (the run that wrote it diverged)`,
      );
    }
  } catch (err) {
    for (const t of Object.values(loaded.tensors)) t.dispose();
    throw err;
  }
  return loaded.tensors;
}
