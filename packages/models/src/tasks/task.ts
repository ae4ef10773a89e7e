/**
 * The task contract. A training task is one module that declares, once: its config keys (with
 * the shared sections of sections.ts), how it builds its data, model, loss and evaluation from a
 * resolved config, what "best" means, and its eval / predict commands. Everything a run shares —
 * the run directory, the config (defaults, file, overrides, resume), the device, threads,
 * precision, seeds, the optimizer, checkpoints and the loop — is done here, once, by defineTask.
 * The CLI derives `kexue train|eval|predict <task>` from the registry (registry.ts).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';

import { devices, dist, FormatError, KexueIOError, Philox, resolveDevice, setNumThreads, type Tensor } from '@kexue/core-cuda';
import { loadOptimizerState, type Optimizer } from '@kexue/optimizers';

import type { Batch, Dataset } from '../data/dataset.js';
import type { Module } from '../nn/module.js';
import { checkArchitecture, checkpointDir, loadWeights, MODEL_FILE, OPTIMIZER_FILE, readModelHeader, readTrainerState, type Architecture, type TrainerState } from '../train/checkpoint.js';
import { ignoreEvents, type StartEvent, type TrainObserver } from '../train/events.js';
import { tensorboardObserver } from '../train/tensorboard.js';
import { readJson, writeJsonAtomic } from '../train/files.js';
import { PrecisionPolicy } from '../train/precision.js';
import { CONFIG_FILE, INDEX_FILE, assertRunDir, checkNewRunDir, createRunDir, lockRunDir, removeUnfinishedRun, timestampedRunDir, type RunLock } from '../train/run_dir.js';
import type { BatchTensors } from '../train/compiled_step.js';
import { trainLoop, type TrainSummary } from '../train/trainer.js';
import { RequestError, configKeys, flatten, resolveConfig, type ConfigOf, type ConfigSources, type ConfigSpec, type ConfigValues, type Key } from './config.js';
import { COMPILE_NOT_DATA_PARALLEL, DEVICE_NAME, buildOptimizer, checkCompileKeys, padMultiple, totalSteps, type LearningRateRecipe, type optimKeys, type RUN_KEYS, type trainKeys } from './sections.js';

/** The keys the shared run machinery reads: every training task's spec has them. */
export type RunSpec = { train: ReturnType<typeof trainKeys>; optim: ReturnType<typeof optimKeys> } & typeof RUN_KEYS;

/** An option of a task's eval or predict command (`--data FILE`). */
export interface CommandOption {
  /** Long name without dashes, kebab-case: `per-type` is `--per-type`. */
  name: string;
  type: 'boolean' | 'string' | 'number' | 'integer';
  description: string;
  /** A one-letter alias: `-i`. */
  short?: string;
  /** The value's name in help (`--data FILE`). */
  valueName?: string;
  default?: string | number | boolean;
  required?: boolean;
  repeatable?: boolean;
  /** Allowed values (strings). */
  choices?: readonly string[];
  /** A rule a string value must follow. */
  rule?: { test: (value: string) => boolean; expected: string };
}

/** A positional argument of a command. */
export interface CommandPositional {
  name: string;
  description: string;
  required?: boolean;
  /** Takes every remaining argument (only the last positional). */
  variadic?: boolean;
}

/** Parsed arguments: options by camelCase name, positionals by name. */
export interface CommandArgs {
  options: Record<string, string | number | boolean | Array<string | number> | undefined>;
  positionals: Record<string, string | string[] | undefined>;
}

/** Where a command writes and what it may read. */
export interface CommandIO {
  cwd: string;
  /** Standard output. */
  write(text: string): void;
  /** A message for the person running the command, on standard error (one line; the newline is added). */
  warn(message: string): void;
  readStdin(): Promise<string>;
  /** Writes an 8-bit gray image as a PNG file (the CLI's, through pngjs); absent where the program cannot. */
  writeImage?(file: string, image: { width: number; height: number; data: Uint8Array }): Promise<void>;
}

/** The options every command on a trained run has: which checkpoint, and where the model computes. */
export const RUN_DIR_OPTIONS: readonly CommandOption[] = [
  { name: 'checkpoint', type: 'string', valueName: 'WHICH', description: 'best or last', default: 'best', choices: ['best', 'last'] },
  {
    name: 'device',
    type: 'string',
    valueName: 'cpu|cuda|cuda:N',
    description: 'where the model computes, whichever device trained the run',
    default: 'cpu',
    rule: DEVICE_NAME,
  },
];

/** `--data FILE` and `--format F` of an evaluation (defaults: the run's data.dev and data.format). */
export function evalDataOptions(what: string, formats: readonly string[]): CommandOption[] {
  return [
    { name: 'data', type: 'string', valueName: 'FILE', description: `${what} (default: the run's data.dev)` },
    { name: 'format', type: 'string', valueName: 'FORMAT', description: "the file's format (default: the run's data.format)", choices: formats },
  ];
}

/** `kexue eval <task> RUN_DIR …` or `kexue predict <task> RUN_DIR …`. */
export interface TaskCommand {
  summary: string;
  /** Help lines after the usage (what it prints, examples). */
  details?: readonly string[];
  options: readonly CommandOption[];
  /** Positionals after RUN_DIR. */
  positionals?: readonly CommandPositional[];
  run(runDir: string, args: CommandArgs, io: CommandIO): Promise<void>;
}

/**
 * `kexue eval <name> MODEL …`: an evaluation that belongs to no training task, of a model that
 * `model` describes (a run directory, a checkpoint directory); run() gets its absolute path.
 */
export interface EvaluationCommand extends TaskCommand {
  name: string;
  model: CommandPositional;
}

/** The last checkpoint of a run being resumed, read before anything is written. */
export interface ResumePoint {
  dir: string;
  state: TrainerState;
  /** The architecture recorded in its model.safetensors. */
  arch: Architecture;
}

/** What a task's setup gets besides its config. */
export interface RunContext {
  runDir: string;
  /** The canonical device name ('cpu', 'cuda:0'). */
  device: string;
  resume: ResumePoint | null;
  /** The dropout generator the model draws from (at the resume point's offset). */
  dropout: Philox;
}

/**
 * What a task builds for training. The loss of a micro-batch is split in two, so that a compiled
 * run (train.compile) can take the batch's tensors as arguments of its program: `inputs` makes them
 * from the records on the host (with anything drawn per batch there, such as MLM's masking), and
 * `lossOf` is the loss of those tensors (tensor code only). The loss of a batch is
 * `lossOf(inputs(batch, 1))`.
 */
export interface TrainPlan<R, I extends BatchTensors = BatchTensors> {
  /** Built on the CPU; the run moves it to its device. */
  model: Module;
  data: Dataset<R>;
  /**
   * A micro-batch's tensors on the model's device, every length and count padded up to a multiple
   * of `padTo` (1: the batch's longest; the run's train.pad_multiple, by default 16 when compiled),
   * never beyond the task's maximum length.
   */
  inputs(batch: Batch<R>, padTo: number): I;
  /** The loss (a scalar) of a micro-batch's tensors: tensor code only (no host reads, no tensors from host data). */
  lossOf(inputs: I): Tensor;
  /** Real tokens in a batch (for tokens/s). */
  tokens(records: R[]): number;
  /** What the loss of a batch is a mean over, where not its examples (TrainTask.lossWeight). */
  lossWeight?(batch: Batch<R>): number;
  /** Held-out evaluation; absent when the run has no dev data. */
  evaluate?(): Promise<Record<string, number>>;
  /** The architecture record checkpoints carry (checked on resume and when loading). */
  arch: Architecture;
  /** Files copied into each checkpoint, by name (tokenizer files). */
  files: Record<string, string>;
  about: Pick<StartEvent, 'model' | 'data' | 'extra'>;
  /** Frees what the plan holds besides the model (a sampler's table), when the run ends. */
  dispose?(): void;
}

/** What a task module declares. */
export interface TaskDefinition<S extends ConfigSpec & RunSpec, R, I extends BatchTensors = BatchTensors> {
  /** `ner`, `mlm`, … (the CLI's `kexue train <name>`, recorded in checkpoints). */
  name: string;
  /** One line for `kexue train --help`. */
  summary: string;
  /** Help lines of `kexue train <name> --help` before the keys (what it trains, examples). */
  details?: readonly string[];
  config: S;
  /** The learning rates where this task's recipe differs from the optimizers' defaults (optim.lr = 0). */
  recipe: LearningRateRecipe;
  /** The evaluation metric that picks the best checkpoint; null: the last is the best. */
  best: { metric: string; higherIsBetter: boolean } | null;
  /** The rules between keys (RequestError naming them and why), checked whenever a config is resolved. */
  check?(config: ConfigOf<S>): void;
  /** Builds data, model, loss and evaluation; checks every input before the run writes anything. */
  setup(config: ConfigOf<S> & { task: string }, run: RunContext): Promise<TrainPlan<R, I>>;
  /** One line about an evaluation: 'dev F1 0.4805 (P 0.5381, R 0.4341)'. */
  describeEval(metrics: Record<string, number>): string;
  commands: TaskCommands;
}

/** A task's commands on its runs: `kexue eval|predict|sample <task> RUN_DIR …`. */
export interface TaskCommands {
  eval?: TaskCommand;
  predict?: TaskCommand;
  /** Writes what a generative model makes (image grids). */
  sample?: TaskCommand;
}

/** How to train: where the config comes from and where the run goes. */
export interface TrainOptions<C> {
  /** A config file's values and its name for messages (the CLI's --config). */
  file?: ConfigSources['file'];
  /** Config values given in code (nested), applied after the file. */
  values?: ConfigValues<C>;
  /** `key=value` settings, applied last. */
  overrides?: readonly string[];
  /** A new run directory (must be absent or empty; default runs/<task>-<time> under cwd). */
  runDir?: string;
  /** Continue the run in this directory from its last checkpoint (its own config; no runDir, file or values). */
  resume?: string;
  /** Relative paths (run directories, config paths) are resolved against it; default process.cwd(). */
  cwd?: string;
  onEvent?: TrainObserver;
  /** Abort it to stop after the current update with a checkpoint (the CLI's Ctrl-C). */
  stop?: AbortSignal;
}

export interface TrainResult extends TrainSummary {
  runDir: string;
  /** This process's rank in a data-parallel job (0 in a single-process run), and the job's processes. */
  rank: number;
  processes: number;
}

/** A registered task, as the CLI and programs use it. */
export interface Task<C = Record<string, unknown>> {
  readonly name: string;
  readonly summary: string;
  readonly details: readonly string[];
  /** The config keys by dotted name, in declaration order. */
  readonly keys: readonly [string, Key][];
  readonly best: { metric: string; higherIsBetter: boolean } | null;
  readonly commands: TaskCommands;
  /** Resolves and checks a config (RequestError naming the key for any mistake). */
  resolve(sources: ConfigSources & { values?: ConfigValues<C> }): C & { task: string };
  /** The config of an existing run of this task, checked (E_FORMAT for another task's run). */
  readConfig(runDir: string): C & { task: string };
  /** Trains a fresh run, or continues one (options.resume). */
  train(options: TrainOptions<C>): Promise<TrainResult>;
  describeEval(metrics: Record<string, number>): string;
}

/** The resume point of a run directory (E_IO / E_FORMAT when it has none or it is damaged). */
function resumePoint(runDir: string): ResumePoint {
  const dir = checkpointDir(runDir, 'last');
  return { dir, state: readTrainerState(dir), arch: readModelHeader(path.join(dir, MODEL_FILE)).arch };
}

/** Makes a task from its declaration: config resolution, run preparation and training, shared by every task. */
export function defineTask<S extends ConfigSpec & RunSpec, R, I extends BatchTensors = BatchTensors>(def: TaskDefinition<S, R, I>): Task<ConfigOf<S>> {
  type C = ConfigOf<S>;
  const keys = configKeys(def.config);

  const resolve = (sources: ConfigSources & { values?: ConfigValues<C> }): C & { task: string } => {
    const { values, ...rest } = sources;
    const config = resolveConfig(def.name, def.config, values === undefined ? rest : { ...rest, values: values as Record<string, unknown> });
    def.check?.(config);
    // every task's spec has the run keys (RunSpec), which TypeScript cannot see through ConfigOf<S>
    checkCompileKeys(config as unknown as ConfigOf<RunSpec>);
    return config;
  };

  const readConfig = (runDir: string): C & { task: string } => {
    assertRunDir(runDir);
    const base = readJson(path.join(runDir, CONFIG_FILE), 'run config') as Record<string, unknown>;
    if (base?.task !== def.name) throw new FormatError(`${runDir} is a ${String(base?.task)} run, not a ${def.name} run`);
    return resolve({ base });
  };

  const train = async (o: TrainOptions<C>): Promise<TrainResult> => {
    const cwd = o.cwd ?? process.cwd();
    let runDir: string;
    let config: C & { task: string };
    if (o.resume !== undefined) {
      if (o.runDir !== undefined || o.file !== undefined || o.values !== undefined) throw new RequestError('a resumed run keeps its directory and config: give only key=value overrides of resumable keys');
      runDir = path.resolve(cwd, o.resume);
      const base = readConfig(runDir);
      config = resolve({ base, overrides: o.overrides ?? [], cwd });
    } else {
      runDir = o.runDir !== undefined ? path.resolve(cwd, o.runDir) : timestampedRunDir(path.resolve(cwd, 'runs'), def.name);
      config = resolve({ ...(o.file ? { file: o.file } : {}), ...(o.values ? { values: o.values } : {}), overrides: o.overrides ?? [], cwd });
    }
    const values = flatten(config);
    for (const [name, key] of keys) {
      const file = values[name] as string;
      if (key.path === 'file' && file !== '' && !existsSync(file)) throw new KexueIOError(`${name}: data file ${file} does not exist`);
    }
    // every task's spec has the run keys (RunSpec), which TypeScript cannot see through ConfigOf<S>
    const run = config as unknown as ConfigOf<RunSpec>;
    const fresh = o.resume === undefined;
    // a process started by mpirun is one of a data-parallel job, where rank 0 alone reports and
    // writes the run (its directory, lock, config, metrics, checkpoints)
    const world = dist.launchedByMpi() ? dist.init() : null;
    if (world && world.size > 1 && run.train.compile) throw new RequestError(COMPILE_NOT_DATA_PARALLEL);
    const lead = !world || world.rank === 0;
    // a fresh run's directory is checked and taken once everything else is (nothing written before)
    const existed = fresh && existsSync(runDir);
    // the caller's observer, and the run's TensorBoard event files (opened at the first event)
    const tensorboard = lead ? tensorboardObserver(runDir) : null;
    const caller = lead ? (o.onEvent ?? ignoreEvents) : ignoreEvents;
    const onEvent: TrainObserver = (e) => {
      caller(e);
      tensorboard?.(e);
    };
    const tookOver = (lock: RunLock) => {
      const t = lock.tookOver;
      if (t) onEvent({ type: 'notice', message: `took over the lock of ${runDir}${t.pid ? ` from process ${t.pid} (started ${t.started}), which is gone` : ', which no process finished writing'}` });
      return lock;
    };
    let lock = fresh || !lead ? null : tookOver(lockRunDir(runDir));
    let plan: TrainPlan<R, I> | null = null;
    let optimizer: Optimizer | null = null;
    try {
      if (run.train.threads > 0) setNumThreads(run.train.threads);
      const precision = PrecisionPolicy.fromConfig(run);
      // data-parallel on GPUs: device=cuda means one GPU per process, by its rank on the machine
      const gpus = world && run.device === 'cuda' ? devices().filter((d) => d.type === 'cuda').length : 0;
      const device = resolveDevice(gpus > 0 ? `cuda:${dist.localRank() % gpus}` : run.device);
      const resume = fresh ? null : resumePoint(runDir);
      const dropout = new Philox(run.train.seed, resume ? resume.state.dropoutOffset : 0);
      plan = await def.setup(config, { runDir, device, resume, dropout });
      if (resume) checkArchitecture(path.join(resume.dir, MODEL_FILE), resume.arch, plan.arch);
      const steps = totalSteps(run.train, plan.data.length);
      optimizer = buildOptimizer(run.optim, steps, def.recipe);
      // checkpoints hold host tensors whatever device wrote them: weights load where the model was
      // built and move with it; the optimizer state is read onto the device its steps will check
      if (resume) loadWeights(path.join(resume.dir, MODEL_FILE), plan.model);
      plan.model.to(device);
      if (resume) loadOptimizerState(path.join(resume.dir, OPTIMIZER_FILE), optimizer, { device });
      else if (lead) {
        lock = tookOver(lockRunDir(runDir));
        if (checkNewRunDir(runDir)) onEvent({ type: 'notice', message: `${runDir} held a run that stopped before its first checkpoint: starting it anew` });
        createRunDir(runDir);
        await writeJsonAtomic(path.join(runDir, CONFIG_FILE), config);
      }
      onEvent({
        type: 'start',
        task: def.name,
        runDir,
        device,
        precision: precision.compute === 'float32' ? null : precision.describe(),
        parameters: plan.model.parameterCount(),
        updates: steps,
        ...plan.about,
      });
      const summary = await trainLoop(
        {
          name: def.name,
          model: plan.model,
          data: plan.data,
          inputs: plan.inputs,
          lossOf: plan.lossOf,
          tokens: plan.tokens,
          ...(plan.lossWeight ? { lossWeight: plan.lossWeight } : {}),
          ...(plan.evaluate ? { evaluate: plan.evaluate, ...(def.best ? { mainMetric: { name: def.best.metric, higherIsBetter: def.best.higherIsBetter } } : {}) } : {}),
        },
        {
          runDir,
          batchSize: run.train.batch_size,
          gradAccum: run.train.grad_accum,
          totalSteps: steps,
          seed: run.train.seed,
          logEvery: run.train.log_every,
          evalEvery: run.train.eval_every,
          saveEvery: run.train.save_every,
          stopAt: run.train.stop_at,
          maxNonFinite: run.train.max_nonfinite,
          optimizer,
          dropout,
          arch: plan.arch,
          config,
          files: plan.files,
          onEvent,
          ...(resume ? { resume: resume.state } : {}),
          ...(o.stop ? { stop: o.stop } : {}),
          ...(world ? { world } : {}),
          compile: run.train.compile,
          padTo: padMultiple(run.train),
          precision,
        },
      );
      return { ...summary, runDir, rank: world?.rank ?? 0, processes: world?.size ?? 1 };
    } catch (err) {
      // a fresh run that failed before its first checkpoint leaves nothing that blocks the next
      if (fresh && lock && !existsSync(path.join(runDir, INDEX_FILE))) removeUnfinishedRun(runDir, existed);
      throw err;
    } finally {
      tensorboard?.close();
      plan?.model.dispose();
      plan?.dispose?.();
      optimizer?.dispose();
      lock?.release();
    }
  };

  return {
    name: def.name,
    summary: def.summary,
    details: def.details ?? [],
    keys,
    best: def.best,
    commands: def.commands,
    resolve,
    readConfig,
    train,
    describeEval: def.describeEval,
  };
}
