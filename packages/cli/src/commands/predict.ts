/** `kexue predict ner RUN_DIR "文本…"`: entities with character offsets, as JSON lines. */
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { checkDeviceOption } from '../config/resolve.js';
import type { Command } from '../framework/command.js';
import { UsageError } from '../framework/errors.js';

export const predict: Command = {
  name: 'predict',
  summary: 'Find entities in texts with a trained NER run; prints JSON lines.',
  details: [
    'One line per text: {"text", "entities": [{"start", "end", "type", "text", "score"}]}, where',
    '[start, end) are offsets in UTF-16 code units of the text (one per Chinese character),',
    'end exclusive. --input FILE reads one text a line (- for standard input).',
    '',
    'Examples:',
    '  kexue predict ner runs/ner-20250101-120000 "浙商银行企业信贷部叶老桂博士"',
    '  kexue predict ner runs/ner-20250101-120000 --input texts.txt',
  ].join('\n'),
  options: [
    { name: 'input', type: 'string', short: 'i', valueName: 'FILE', description: "texts, one a line ('-' = standard input)" },
    { name: 'checkpoint', type: 'string', valueName: 'WHICH', description: 'best or last', default: 'best' },
    { name: 'device', type: 'string', valueName: 'cpu|cuda|cuda:N', description: 'where the model computes, whichever device trained the run', default: 'cpu' },
    { name: 'threshold', type: 'number', valueName: 'X', description: 'score threshold (logit)', default: 0 },
  ],
  positionals: [
    { name: 'task', description: 'ner', required: true },
    { name: 'run-dir', description: 'the run directory', required: true },
    { name: 'texts', description: 'texts to analyse', variadic: true },
  ],
  async run(args, ctx) {
    if (args.positionals.task !== 'ner') throw new UsageError(`predict supports the task 'ner', got '${String(args.positionals.task)}'`, 'predict');
    const { input, checkpoint, threshold, device } = args.options as { input?: string; checkpoint: string; threshold: number; device: string };
    if (checkpoint !== 'best' && checkpoint !== 'last') throw new UsageError(`--checkpoint must be best or last, got '${checkpoint}'`, 'predict');
    checkDeviceOption(device, 'predict');
    let texts = (args.positionals.texts as string[] | undefined) ?? [];
    if (input !== undefined) {
      if (texts.length) throw new UsageError('give texts or --input, not both', 'predict');
      const { KexueIOError } = await import('@kexue/core-cuda');
      let raw: string;
      try {
        raw = input === '-' ? await ctx.readStdin() : readFileSync(path.resolve(ctx.cwd, input), 'utf8');
      } catch (err) {
        throw new KexueIOError(`cannot read ${input}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      texts = raw.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l)).filter((l) => l.trim() !== '');
    }
    if (texts.length === 0) throw new UsageError('no text: give texts or --input FILE', 'predict');
    const { NerPredictor } = await import('@kexue/models');
    const predictor = NerPredictor.load(path.resolve(ctx.cwd, args.positionals['run-dir'] as string), checkpoint, device);
    try {
      const results = predictor.predict(texts, 32, threshold);
      results.forEach((ents, i) => {
        const entities = ents.map((e) => ({ start: e.start, end: e.end, type: e.type, text: e.text, score: Number(e.score.toFixed(4)) }));
        ctx.stdout(`${JSON.stringify({ text: texts[i], entities })}\n`);
      });
    } finally {
      predictor.dispose();
    }
  },
};
