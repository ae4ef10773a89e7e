/** `kexue tokenize`: a text's ids, tokens and offsets as JSON, with either tokenizer. */
import path from 'node:path';
import type { Command } from '../framework/command.js';
import { UsageError } from '../framework/errors.js';

export const tokenize: Command = {
  name: 'tokenize',
  summary: 'Tokenize a text and print {ids, tokens, offsets} as JSON.',
  details: [
    'The BERT WordPiece tokenizer by default (lowercasing, as for Google\'s Chinese vocabulary);',
    'the T5 PEGASUS tokenizer (jieba words first) with --t5-pegasus. Without --vocab, the vocabulary',
    'bundled with @kexue/models for that tokenizer (bert-base-chinese, T5 PEGASUS base). [CLS] and [SEP] are included;',
    'offsets are [start, end) in UTF-16 code units of the text, [0, 0] for special tokens.',
    "TEXT '-' reads standard input and prints one JSON line per input line.",
    '',
    'Examples:',
    '  kexue tokenize "我爱北京"',
    '  kexue tokenize --t5-pegasus "李嘉诚回应质疑"',
    '  kexue tokenize --vocab my-vocab.txt "我爱北京"',
  ].join('\n'),
  options: [
    { name: 'vocab', type: 'string', valueName: 'FILE', description: "the vocab.txt (one token a line; default: the bundled one of the tokenizer)" },
    { name: 't5-pegasus', type: 'boolean', description: 'use the T5 PEGASUS tokenizer (jieba + WordPiece)' },
    { name: 'lowercase', type: 'boolean', description: 'lowercase and strip accents (BERT; --no-lowercase keeps case)', default: true },
    { name: 'pair', type: 'string', valueName: 'TEXT', description: 'a second text: also prints segmentIds' },
    { name: 'max-length', type: 'integer', valueName: 'N', description: 'truncate to N tokens, special tokens included' },
  ],
  positionals: [{ name: 'text', description: "the text to tokenize, or '-' for standard input", required: true }],
  async run(args, ctx) {
    const { vocab, t5Pegasus, lowercase, pair, maxLength } = args.options as {
      vocab?: string;
      t5Pegasus?: boolean;
      lowercase: boolean;
      pair?: string;
      maxLength?: number;
    };
    if (t5Pegasus && lowercase === false) throw new UsageError('the T5 PEGASUS tokenizer always lowercases: drop --no-lowercase', 'tokenize');
    if (maxLength !== undefined && maxLength < 1) throw new UsageError('--max-length must be at least 1', 'tokenize');
    const { BUNDLED_VOCABS, BertTokenizer, T5PegasusTokenizer } = await import('@kexue/models');
    const file = vocab !== undefined ? path.resolve(ctx.cwd, vocab) : t5Pegasus ? BUNDLED_VOCABS.t5PegasusBase : BUNDLED_VOCABS.bertBaseChinese;
    const tok = t5Pegasus ? T5PegasusTokenizer.fromVocab(file) : BertTokenizer.fromVocab(file, { lowercase });
    const text = args.positionals.text as string;
    const encodeOne = (t: string): string => {
      const enc = tok.encode(t, { ...(pair !== undefined ? { pair } : {}), ...(maxLength !== undefined ? { maxLength } : {}) });
      const out: Record<string, unknown> = { ids: enc.ids, tokens: enc.tokens, offsets: enc.offsets };
      if (pair !== undefined) out.segmentIds = enc.segmentIds;
      return JSON.stringify(out);
    };
    if (text === '-') {
      const input = await ctx.readStdin();
      const lines = input.split('\n');
      if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
      for (const line of lines) ctx.stdout(encodeOne(line.endsWith('\r') ? line.slice(0, -1) : line) + '\n');
      return;
    }
    ctx.stdout(encodeOne(text) + '\n');
  },
};
