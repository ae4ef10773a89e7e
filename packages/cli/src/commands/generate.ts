/** `kexue generate summarize RUN_DIR TEXT`: a trained run's generated text, printed as its tokens are chosen. */
import path from 'node:path';

import type { CommandGroup, LeafCommand } from '../framework/command.js';

const summarize: LeafCommand = {
  name: 'generate summarize',
  summary: 'the title (summary) a summarization run generates for a text, printed token by token',
  details: [
    'Greedy decoding by default; --sample draws tokens (--temperature, --top-k, --top-p, --seed: the same',
    'seed gives the same text). Stops at [SEP] or the run\'s data.max_target. For beam search, whose text is',
    'known only at its end, use `kexue predict summarize --beams K`.',
    '',
    'Examples:',
    '  kexue generate summarize runs/summarize-20250101-120000 "本文提出了一种……"',
    '  kexue generate summarize runs/summarize-20250101-120000 "本文提出了一种……" --sample --top-p 0.9 --seed 3',
  ].join('\n'),
  options: [
    { name: 'sample', type: 'boolean', description: 'sample tokens instead of taking the most likely' },
    { name: 'temperature', type: 'number', valueName: 'T', description: 'sampling temperature', default: 1 },
    { name: 'top-k', type: 'integer', valueName: 'K', description: 'sample from the K most likely tokens (0 = all)', default: 0 },
    { name: 'top-p', type: 'number', valueName: 'P', description: 'sample from the most likely tokens whose probabilities sum to P', default: 1 },
    { name: 'seed', type: 'integer', valueName: 'N', description: 'seed of the samples', default: 0 },
    { name: 'checkpoint', type: 'string', valueName: 'WHICH', description: 'best or last', default: 'best', choices: ['best', 'last'] },
    { name: 'device', type: 'string', valueName: 'cpu|cuda|cuda:N', description: 'where the model computes', default: 'cpu' },
  ],
  positionals: [
    { name: 'run', description: 'the run directory', required: true },
    { name: 'text', description: 'the text to summarize', required: true },
  ],
  async run(args, ctx) {
    const o = args.options as { sample?: boolean; temperature: number; topK: number; topP: number; seed: number; checkpoint: 'best' | 'last'; device: string };
    const { Summarizer } = await import('@kexue/models');
    const s = Summarizer.load(path.resolve(ctx.cwd, args.positionals.run as string), o.checkpoint, o.device, (m) => ctx.stderr(`${m}\n`));
    try {
      const stream = s.stream(args.positionals.text as string, o.sample ? { mode: 'sample', temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed } : { mode: 'greedy' });
      for await (const piece of stream) ctx.stdout(piece);
      ctx.stdout('\n');
    } finally {
      s.dispose();
    }
  },
};

/** `kexue generate <task>`: the tasks that generate text (today summarize). */
export const generateGroup: CommandGroup = {
  name: 'generate',
  summary: 'Stream the text a trained run generates, token by token.',
  member: 'task',
  details: 'Today: summarize (kexue train summarize).',
  async subcommands() {
    return [summarize];
  },
};
