/** `kexue train <task>`: a training run (NER with GlobalPointer heads, or masked-LM pretraining). */
import path from 'node:path';

import { resolveConfig } from '../config/resolve.js';
import { TASK_KEYS, type KeySpec } from '../config/schema.js';
import type { Command, CommandContext } from '../framework/command.js';
import { UsageError } from '../framework/errors.js';

const PATH_KEYS = ['data.train', 'data.dev', 'model.vocab', 'init'];

function keyTable(keys: readonly KeySpec[]): string {
  return keys.map((k) => `  ${k.key.padEnd(20)} ${String(JSON.stringify(k.default)).padEnd(10)} ${k.description}${k.choices ? ` (${k.choices.join('|')})` : ''}`).join('\n');
}

/** Whether to draw a progress bar: stderr is a terminal, unless KEXUE_PROGRESS is 'bar' or 'lines'. */
function wantsBar(ctx: CommandContext): boolean {
  const mode = ctx.env.KEXUE_PROGRESS;
  if (mode === 'bar' || mode === 'lines') return mode === 'bar';
  return Boolean(process.stderr.isTTY);
}

export const train: Command = {
  name: 'train',
  summary: 'Train a model: ner (GlobalPointer NER) or mlm (masked-LM pretraining).',
  details: [
    'Settings come from the defaults, then --config FILE (YAML or JSON), then key=value arguments.',
    'With no data key, `kexue train ner` trains a small RoFormer + Efficient GlobalPointer on the',
    'shipped CLUENER sample and prints its dev F1. A run writes into --run-dir (default: a new',
    'runs/<task>-<time>/): config.json, metrics.jsonl and checkpoints; --resume DIR continues one.',
    '',
    'Keys of `train ner` (key, default, meaning):',
    keyTable(TASK_KEYS.ner!),
    '',
    'Keys of `train mlm`:',
    keyTable(TASK_KEYS.mlm!),
    '',
    'Examples:',
    '  kexue train ner',
    '  kexue train ner data.train=train.bmes data.dev=dev.bmes head.kind=gp optim.name=adamw',
    '  kexue train mlm train.epochs=20 --run-dir runs/mlm',
    '  kexue train ner init=runs/mlm --run-dir runs/ner-from-mlm',
    '  kexue train ner --precision bf16',
    '  kexue train ner --precision fp16 loss_scale=1024',
    '  kexue train ner --device cuda --precision bf16',
    '  kexue train ner --resume runs/ner-20250101-120000',
  ].join('\n'),
  options: [
    { name: 'config', type: 'string', short: 'c', valueName: 'FILE', description: 'a YAML or JSON config file' },
    { name: 'run-dir', type: 'string', valueName: 'DIR', description: 'the run directory (must be new or empty; default runs/<task>-<time>)' },
    { name: 'resume', type: 'string', valueName: 'DIR', description: 'continue the run in DIR from its last checkpoint' },
    { name: 'precision', type: 'string', valueName: 'fp32|fp16|bf16', description: 'compute dtype, the same as precision=… (mixed precision keeps float32 master weights)' },
    { name: 'device', type: 'string', valueName: 'cpu|cuda|cuda:N', description: 'where the run computes, the same as device=… (may change on --resume)' },
  ],
  positionals: [
    { name: 'task', description: 'ner or mlm', required: true },
    { name: 'overrides', description: 'key=value settings', variadic: true },
  ],
  async run(args, ctx) {
    const task = args.positionals.task as string;
    const keys = TASK_KEYS[task];
    if (!keys) throw new UsageError(`unknown task '${task}' (tasks: ${Object.keys(TASK_KEYS).join(', ')})`, 'train');
    const { config: file, runDir: runDirOpt, resume, precision, device } = args.options as { config?: string; runDir?: string; resume?: string; precision?: string; device?: string };
    if (resume !== undefined && runDirOpt !== undefined) throw new UsageError('--resume DIR continues that run: drop --run-dir', 'train');
    if (resume !== undefined && file !== undefined) throw new UsageError('--resume uses the run\'s own config: drop --config', 'train');
    // --precision X and --device X are the overrides precision=X and device=X, given last so that they win
    const flags = Object.entries({ precision, device }).flatMap(([key, value]) => (value !== undefined ? [`${key}=${value}`] : []));
    const overrides = [...((args.positionals.overrides as string[] | undefined) ?? []), ...flags];
    const models = await import('@kexue/models');
    let base: Record<string, unknown> | undefined;
    let runDir: string;
    if (resume !== undefined) {
      runDir = path.resolve(ctx.cwd, resume);
      models.assertRunDir(runDir);
      base = models.readJson(path.join(runDir, models.CONFIG_FILE), 'run config') as Record<string, unknown>;
      if (base.task !== task) throw new UsageError(`${resume} is a ${String(base.task)} run, not ${task}`, 'train');
    } else {
      runDir = runDirOpt !== undefined ? path.resolve(ctx.cwd, runDirOpt) : models.timestampedRunDir(path.resolve(ctx.cwd, 'runs'), task);
    }
    const config = resolveConfig(task, keys, { ...(file !== undefined ? { file } : {}), overrides, ...(base ? { base } : {}), command: 'train', cwd: ctx.cwd });
    for (const key of PATH_KEYS) {
      const [section, name] = key.includes('.') ? (key.split('.') as [string, string]) : [undefined, key];
      const holder = (section ? config[section] : config) as Record<string, unknown> | undefined;
      if (holder && typeof holder[name] === 'string' && holder[name] !== '') holder[name] = path.resolve(ctx.cwd, holder[name] as string);
    }
    const progress = models.progressReporter({ write: ctx.stderr, tty: wantsBar(ctx), columns: process.stderr.columns ?? 80 });
    const run = { runDir, resume: resume !== undefined, progress, cwd: ctx.cwd };
    const summary = task === 'ner' ? await models.trainNer(config as never, run) : await models.trainMlm(config as never, run);
    const out: Record<string, unknown> = { run_dir: summary.runDir, step: summary.step, stopped_early: summary.stoppedEarly, tokens_per_s: Math.round(summary.tokensPerSecond) };
    if (summary.lastEval) out.dev = summary.lastEval;
    if (summary.best) out.best = summary.best;
    ctx.stdout(`${JSON.stringify(out)}\n`);
    if (summary.stoppedEarly) ctx.stderr(`stopped at step ${summary.step} (train.stop_at); continue with: kexue train ${task} --resume ${summary.runDir}\n`);
    else if (task === 'ner' && summary.lastEval) {
      const e = summary.lastEval;
      ctx.stderr(`dev F1 ${e.f1!.toFixed(4)} (P ${e.precision!.toFixed(4)}, R ${e.recall!.toFixed(4)})${summary.best ? `; best ${summary.best.value.toFixed(4)} at step ${summary.best.step}` : ''}; run ${summary.runDir}\n`);
    } else ctx.stderr(`done: run ${summary.runDir}\n`);
  },
};
