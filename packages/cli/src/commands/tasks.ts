/**
 * `kexue train|eval|predict <task>`, derived from @kexue/models' task registry: each task's
 * config keys become `key=value` overrides, config-file keys and the --help key table; its eval
 * and predict commands bring their own options. No task is named here.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { CommandPositional, EvaluationCommand, Key, RequestError as ModelRequestError, Task, TaskCommand } from '@kexue/models';

import { readConfigFile } from '../config_file.js';
import type { Command, CommandContext, CommandGroup, LeafCommand } from '../framework/command.js';
import { UsageError } from '../framework/errors.js';
import { commandHelp, table } from '../framework/help.js';
import { clock, progressRenderer } from '../progress.js';
import { writeGrayPng } from '../png.js';

type Models = typeof import('@kexue/models');

/** The models package, loaded when a task command runs (it loads the native core). */
const models = (): Promise<Models> => import('@kexue/models');

/** Runs fn, reporting the models' request mistakes (bad keys, missing arguments) as usage errors of `command`. */
async function asUsage<T>(command: string, RequestError: typeof ModelRequestError, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof RequestError) throw new UsageError(err.message, command);
    throw err;
  }
}

/** '≥ 2', '0–0.99', 'one of …' and the like: a key's type and range for the key table. */
function keyType(key: Key): string {
  if (key.choices) return key.choices.join('|');
  if (key.path) return 'path';
  if (key.type === 'boolean') return 'true|false';
  if (key.type === 'string') return key.expected === 'a string' ? 'string' : key.expected;
  const range = key.min !== undefined && key.max !== undefined ? ` ${key.min}–${key.max}` : key.min !== undefined ? ` ≥ ${key.min}` : key.max !== undefined ? ` ≤ ${key.max}` : '';
  return key.type + range;
}

/** The key table of a task: key, type and range, default (as the given overrides make it), meaning. */
function keyTable(task: Task, previewValues: Models['previewValues'], overrides: readonly string[]): string {
  const spec = Object.fromEntries(task.keys);
  const values = previewValues(spec, overrides);
  const rows = task.keys.map(([name, key]): [string, string] => {
    const shown = key.showDefault ? key.showDefault(values) : JSON.stringify(values[name]);
    return [name, `${keyType(key)}  default ${shown}${key.resumable ? '  (a resume may change it)' : ''}\n      ${key.doc}`];
  });
  return table(rows);
}

function trainCommand(task: Task, m: Models): LeafCommand {
  const cmd: LeafCommand = {
    name: `train ${task.name}`,
    summary: `${task.summary[0]!.toUpperCase()}${task.summary.slice(1)}.`,
    details: [
      'Settings come from the defaults, then --config FILE (YAML or JSON, nested or dotted keys), then',
      'key=value arguments. A run writes into --run-dir (default: a new runs/<task>-<time>/): config.json,',
      'metrics.jsonl and checkpoints; --resume DIR continues one (only the keys marked so may change).',
      ...(task.details.length ? ['', ...task.details] : []),
    ].join('\n'),
    options: [
      { name: 'config', type: 'string', short: 'c', valueName: 'FILE', description: 'a YAML or JSON config file' },
      { name: 'run-dir', type: 'string', valueName: 'DIR', description: 'the run directory (must be new or empty; default runs/<task>-<time>)' },
      { name: 'resume', type: 'string', valueName: 'DIR', description: 'continue the run in DIR from its last checkpoint' },
      { name: 'precision', type: 'string', valueName: 'fp32|fp16|bf16', description: 'compute dtype, the same as precision=… (mixed precision keeps float32 master weights)' },
      { name: 'device', type: 'string', valueName: 'cpu|cuda|cuda:N', description: 'where the run computes, the same as device=… (may change on --resume)' },
      {
        name: 'nproc',
        type: 'integer',
        valueName: 'N',
        description: 'data-parallel over N processes on this machine: runs mpirun -np N for you (Open MPI; see docs/training.md for several hosts)',
      },
    ],
    positionals: [{ name: 'overrides', description: 'key=value settings (the keys below)', variadic: true }],
    help: (argv) => `${commandHelp(cmd)}\nKeys (key, type, default, meaning):\n${keyTable(task, m.previewValues, argv.filter((a) => a.includes('=') && !a.startsWith('-')))}\n`,
    async run(args, ctx) {
      const { config: file, runDir, resume, precision, device, nproc } = args.options as {
        config?: string;
        runDir?: string;
        resume?: string;
        precision?: string;
        device?: string;
        nproc?: number;
      };
      if (resume !== undefined && runDir !== undefined) throw new UsageError('--resume DIR continues that run: drop --run-dir', cmd.name);
      if (resume !== undefined && file !== undefined) throw new UsageError("--resume uses the run's own config: drop --config", cmd.name);
      // --precision X and --device X are the overrides precision=X and device=X, given last so that they win
      const flags = Object.entries({ precision, device }).flatMap(([key, value]) => (value !== undefined ? [`${key}=${value}`] : []));
      const overrides = [...((args.positionals.overrides as string[] | undefined) ?? []), ...flags];
      if (nproc !== undefined) {
        if (nproc < 1) throw new UsageError(`--nproc must be at least 1, got ${nproc}`, cmd.name);
        if (process.env.OMPI_COMM_WORLD_SIZE !== undefined) throw new UsageError('--nproc starts mpirun itself: drop it when running under mpirun', cmd.name);
        // the same command without --nproc, in each of N processes; a fresh run's directory is named
        // here, so that every rank (and the user) knows it
        const given = Object.entries({ config: file, 'run-dir': resume === undefined ? (runDir ?? m.timestampedRunDir(path.resolve(ctx.cwd, 'runs'), task.name)) : undefined, resume, precision, device });
        const argv = ['train', task.name, ...given.flatMap(([k, v]) => (v !== undefined ? [`--${k}`, v] : [])), ...((args.positionals.overrides as string[] | undefined) ?? [])];
        await refuseCompiledDataParallel(task, m, { file, resume, overrides }, ctx, cmd.name);
        return launchMpi(nproc, argv, ctx);
      }
      const stop = new AbortController();
      const values = file !== undefined ? await readConfigFile(path.resolve(ctx.cwd, file)) : undefined;
      const result = await whileStoppable(stop, ctx, () =>
        asUsage(cmd.name, m.RequestError, () =>
          task.train({
            ...(file !== undefined ? { file: { name: file, values: values! } } : {}),
            ...(runDir !== undefined ? { runDir } : {}),
            ...(resume !== undefined ? { resume } : {}),
            overrides,
            cwd: ctx.cwd,
            onEvent: progressRenderer({ write: ctx.stderr, ...progressTerminal(ctx) }),
            stop: stop.signal,
          }),
        ),
      );
      // the other ranks of a data-parallel job trained alongside rank 0, which reports
      if (result.rank !== 0) return;
      const out: Record<string, unknown> = {
        run_dir: result.runDir,
        ...(result.processes > 1 ? { processes: result.processes } : {}),
        step: result.step,
        stopped_early: result.stoppedEarly,
        interrupted: result.interrupted,
        train_s: Number((result.elapsedMs / 1000).toFixed(3)),
        tokens_per_s: Math.round(result.tokensPerSecond),
      };
      if (result.lastEval) out.dev = result.lastEval;
      if (result.best) out.best = result.best;
      ctx.stdout(`${JSON.stringify(out)}\n`);
      const trained = `trained for ${clock(result.elapsedMs)}`;
      if (result.stoppedEarly) {
        const why = result.interrupted ? 'interrupted' : 'train.stop_at';
        ctx.stderr(`stopped at step ${result.step} (${why}) with a checkpoint, ${trained}; continue with: kexue train ${task.name} --resume ${result.runDir}\n`);
      } else {
        const best = result.best ? `; best ${result.best.metric} ${result.best.value.toFixed(4)} at step ${result.best.step}` : '';
        ctx.stderr(`${result.lastEval ? `${task.describeEval(result.lastEval)}${best}` : 'done'}; ${trained}; run ${result.runDir}\n`);
      }
    },
  };
  return cmd;
}

/**
 * Refuses `--nproc` with train.compile (the run's config: its file and overrides, or a resumed run's
 * own) before mpirun starts, where every rank would refuse it (a compiled update cannot all-reduce).
 */
async function refuseCompiledDataParallel(
  task: Task,
  m: Models,
  o: { file: string | undefined; resume: string | undefined; overrides: string[] },
  ctx: CommandContext,
  command: string,
): Promise<void> {
  const config = await asUsage(command, m.RequestError, async () =>
    o.resume !== undefined
      ? task.readConfig(path.resolve(ctx.cwd, o.resume))
      : task.resolve({ ...(o.file !== undefined ? { file: { name: o.file, values: await readConfigFile(path.resolve(ctx.cwd, o.file)) } } : {}), overrides: o.overrides, cwd: ctx.cwd }),
  );
  if ((config as { train?: { compile?: unknown } }).train?.compile === true) throw new UsageError(m.COMPILE_NOT_DATA_PARALLEL, command);
}

/** The `kexue` command's script, which mpirun starts in each process. */
const KEXUE_BIN = fileURLToPath(new URL('../../bin/kexue.js', import.meta.url));

/**
 * `kexue train … --nproc N`: runs `mpirun -np N node kexue.js train …` from the working directory
 * and passes its output on; returns its exit code. Threads are not bound to cores (--bind-to none:
 * Open MPI would pin each process, and so its whole thread pool, to one core); as root, mpirun is
 * allowed to run (it refuses otherwise); KEXUE_MPIRUN_ARGS adds mpirun options (a hostfile, MCA
 * settings), split at spaces.
 */
async function launchMpi(nproc: number, argv: string[], ctx: CommandContext): Promise<number> {
  const mpirun = ctx.env.KEXUE_MPIRUN ?? 'mpirun';
  const extra = (ctx.env.KEXUE_MPIRUN_ARGS ?? '').split(' ').filter((a) => a !== '');
  const asRoot = process.getuid?.() === 0 ? ['--allow-run-as-root'] : [];
  const command = [...asRoot, '--bind-to', 'none', '-np', String(nproc), ...extra, process.execPath, ...process.execArgv, KEXUE_BIN, ...argv];
  const child = spawn(mpirun, command, { cwd: ctx.cwd, env: { ...process.env, ...ctx.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.setEncoding('utf8').on('data', (s: string) => ctx.stdout(s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => ctx.stderr(s));
  try {
    return await new Promise<number>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code, signal) => resolve(code ?? 128 + (signal ? constants.signals[signal] : 0)));
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const { NoMpiError } = await import('@kexue/core-cuda');
    throw new NoMpiError(`--nproc needs Open MPI's ${mpirun}, which is not on PATH: apt-get install openmpi-bin libopenmpi-dev (or set KEXUE_MPIRUN to it)`);
  }
}

/**
 * Runs a training with SIGINT, SIGTERM and SIGHUP asking for a clean stop (the current update
 * finishes and a checkpoint is written); a second signal exits at once (the run resumes from its
 * last checkpoint). The handlers are removed afterwards.
 */
async function whileStoppable<T>(stop: AbortController, ctx: CommandContext, fn: () => Promise<T>): Promise<T> {
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop.signal.aborted) {
      ctx.stderr(`kexue: ${signal} again: stopping now (the run resumes from its last checkpoint)\n`);
      process.exit(128 + constants.signals[signal]);
    }
    ctx.stderr(`\nkexue: ${signal}: stopping after this update with a checkpoint (${signal === 'SIGINT' ? 'Ctrl-C' : 'the signal'} again stops at once)\n`);
    stop.abort();
  };
  for (const s of signals) process.on(s, onSignal);
  try {
    return await fn();
  } finally {
    for (const s of signals) process.off(s, onSignal);
  }
}

/** Where progress goes: a bar on a terminal unless KEXUE_PROGRESS says 'lines' (or 'bar' forces one). */
function progressTerminal(ctx: CommandContext): { terminal?: { columns: number } } {
  const mode = ctx.env.KEXUE_PROGRESS;
  if (mode === 'lines') return {};
  if (mode === 'bar') return { terminal: ctx.terminal ?? { columns: 80 } };
  return ctx.terminal ? { terminal: ctx.terminal } : {};
}

const RUN_DIR: CommandPositional = { name: 'run-dir', description: 'the run directory', required: true };

/** `kexue eval|predict|sample <name> TARGET …`: a task's command on its runs (TARGET the run directory), or an evaluation on its model. */
function runDirCommand(verb: 'eval' | 'predict' | 'sample', member: string, c: TaskCommand, m: Models, target: CommandPositional = RUN_DIR): LeafCommand {
  const name = `${verb} ${member}`;
  return {
    name,
    summary: `${c.summary[0]!.toUpperCase()}${c.summary.slice(1)}.`,
    ...(c.details ? { details: c.details.join('\n') } : {}),
    options: [...c.options],
    positionals: [target, ...(c.positionals ?? [])],
    async run(args, ctx) {
      const runDir = path.resolve(ctx.cwd, args.positionals[target.name] as string);
      await asUsage(name, m.RequestError, () => c.run(runDir, args, { cwd: ctx.cwd, write: ctx.stdout, warn: (message) => ctx.stderr(`${message}\n`), readStdin: ctx.readStdin, writeImage: writeGrayPng }));
    },
  };
}

/**
 * `kexue train`, `kexue eval`, `kexue predict` and `kexue sample`: one member per task that has the command, from
 * the registry (or the tasks given: a program may offer its own); `kexue eval` also has the
 * registry's evaluations that belong to no task (or those given).
 */
export function taskGroup(verb: 'train' | 'eval' | 'predict' | 'sample', tasks?: () => readonly Task[], evaluations?: () => readonly EvaluationCommand[]): CommandGroup {
  const summaries = {
    train: 'Train a model for a task (kexue train <task> --help lists its keys).',
    eval: 'Evaluate a trained run on held-out data, or a sentence encoder on the STS sets (sts).',
    predict: "Run a trained model on new inputs; prints JSON lines.",
    sample: 'Write what a trained generative model makes (PNG grids of images).',
  };
  return {
    name: verb,
    summary: summaries[verb],
    member: 'task',
    async subcommands(): Promise<readonly Command[]> {
      const m = await models();
      const members = (tasks ? tasks() : m.TASKS).flatMap((task): Command[] => {
        if (verb === 'train') return [trainCommand(task, m)];
        const c = task.commands[verb];
        return c ? [runDirCommand(verb, task.name, c, m)] : [];
      });
      if (verb !== 'eval') return members;
      const extra = evaluations ? evaluations() : tasks ? [] : m.EVALUATIONS;
      return [...members, ...extra.map((e) => runDirCommand(verb, e.name, e, m, e.model))];
    },
  };
}
