/** `kexue eval ner RUN_DIR --data FILE`: entity-level P/R/F1 of a trained run on a labelled file. */
import path from 'node:path';

import { checkDeviceOption } from '../config/resolve.js';
import type { Command } from '../framework/command.js';
import { UsageError } from '../framework/errors.js';

const round = (x: number) => Number(x.toFixed(6));

export const evaluate: Command = {
  name: 'eval',
  summary: 'Evaluate a trained NER run: entity-level precision, recall and F1.',
  details: [
    'Prints {"precision", "recall", "f1", "correct", "predicted", "gold", "records"} as JSON;',
    'with --per-type, then one line per entity type {"type", ...}. Exact-match (start, end, type).',
    '',
    'Examples:',
    '  kexue eval ner runs/ner-20250101-120000 --data data/demo/cluener/dev.jsonl --per-type',
    '  kexue eval ner runs/ner-20250101-120000 --device cuda',
  ].join('\n'),
  options: [
    { name: 'data', type: 'string', valueName: 'FILE', description: "a labelled file (default: the run's data.dev)" },
    { name: 'format', type: 'string', valueName: 'FORMAT', description: "auto, cluener, bmes, bio or weibo (default: the run's data.format)" },
    { name: 'per-type', type: 'boolean', description: 'also print P/R/F1 per entity type' },
    { name: 'checkpoint', type: 'string', valueName: 'WHICH', description: 'best or last', default: 'best' },
    { name: 'device', type: 'string', valueName: 'cpu|cuda|cuda:N', description: 'where the model computes, whichever device trained the run', default: 'cpu' },
  ],
  positionals: [
    { name: 'task', description: 'ner', required: true },
    { name: 'run-dir', description: 'the run directory', required: true },
  ],
  async run(args, ctx) {
    if (args.positionals.task !== 'ner') throw new UsageError(`eval supports the task 'ner', got '${String(args.positionals.task)}'`, 'eval');
    const { data, format, perType, checkpoint, device } = args.options as { data?: string; format?: string; perType?: boolean; checkpoint: string; device: string };
    if (checkpoint !== 'best' && checkpoint !== 'last') throw new UsageError(`--checkpoint must be best or last, got '${checkpoint}'`, 'eval');
    checkDeviceOption(device, 'eval');
    if (format !== undefined && !['auto', 'cluener', 'bmes', 'bio', 'weibo'].includes(format)) throw new UsageError(`--format must be auto, cluener, bmes, bio or weibo, got '${format}'`, 'eval');
    const { NerPredictor } = await import('@kexue/models');
    const predictor = NerPredictor.load(path.resolve(ctx.cwd, args.positionals['run-dir'] as string), checkpoint, device);
    try {
      const file = data !== undefined ? path.resolve(ctx.cwd, data) : predictor.config.data.dev;
      if (!file) throw new UsageError('the run has no data.dev: give --data FILE', 'eval');
      const r = await predictor.evaluate(file, (format ?? predictor.config.data.format) as never);
      const line = (x: { precision: number; recall: number; f1: number; correct: number; predicted: number; gold: number }) => ({
        precision: round(x.precision), recall: round(x.recall), f1: round(x.f1), correct: x.correct, predicted: x.predicted, gold: x.gold,
      });
      ctx.stdout(`${JSON.stringify({ ...line(r.overall), records: r.records, data: file })}\n`);
      if (perType) for (const [type, x] of Object.entries(r.perType)) ctx.stdout(`${JSON.stringify({ type, ...line(x) })}\n`);
    } finally {
      predictor.dispose();
    }
  },
};
