/**
 * The kexue CLI: the framework (parsing, help, errors, exit codes) in-process, the tokenize and
 * info commands, and the real bin/kexue.js as a process.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as kx from '@kexue/core-cuda';
import { BertTokenizer, T5PegasusTokenizer } from '@kexue/models';
import { commands, parseArgs, version, type Command } from '@kexue/cli';

import { repoRoot, run as runKexue } from './run_cli.js';

/** The CLI in-process with an empty environment. */
const run = (argv: string[], stdin = '') => runKexue(argv, { stdin, env: {} });

const bertVocab = path.join(repoRoot, 'packages/models/vocab/bert-base-chinese/vocab.txt');
const t5Vocab = path.join(repoRoot, 'packages/models/vocab/t5_pegasus_base/vocab.txt');

describe('kexue tokenize', () => {
  it('prints the BERT encoding as JSON', async () => {
    const text = '我爱Beijing！';
    const r = await run(['tokenize', '--vocab', bertVocab, text]);
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    const enc = BertTokenizer.fromVocab(bertVocab).encode(text);
    expect(JSON.parse(r.out)).toEqual({ ids: enc.ids, tokens: enc.tokens, offsets: enc.offsets });
  });

  it('uses the T5 PEGASUS tokenizer with --t5-pegasus, relative vocab paths from cwd', async () => {
    const text = '李嘉诚回应“撤资”等质疑';
    const r = await run(['tokenize', '--t5-pegasus', '--vocab=packages/models/vocab/t5_pegasus_base/vocab.txt', text]);
    expect(r.code).toBe(0);
    const enc = T5PegasusTokenizer.fromVocab(t5Vocab).encode(text);
    expect(JSON.parse(r.out)).toEqual({ ids: enc.ids, tokens: enc.tokens, offsets: enc.offsets });
    expect(JSON.parse(r.out).tokens[1]).toBe('李嘉诚');
  });

  it('keeps case with --no-lowercase, handles pairs, truncation and stdin', async () => {
    const cased = await run(['tokenize', '--vocab', bertVocab, '--no-lowercase', 'Hello']);
    expect(JSON.parse(cased.out).tokens).toEqual(['[CLS]', '[UNK]', '[SEP]']);
    const lower = await run(['tokenize', '--vocab', bertVocab, '--lowercase', 'Hello']);
    expect(JSON.parse(lower.out).tokens).toEqual(['[CLS]', 'hello', '[SEP]']);
    const pair = await run(['tokenize', '--vocab', bertVocab, '--pair', '乙丙', '--max-length', '5', '甲甲甲']);
    expect(JSON.parse(pair.out)).toMatchObject({ tokens: ['[CLS]', '甲', '[SEP]', '乙', '[SEP]'], segmentIds: [0, 0, 0, 1, 1] });
    const stdin = await run(['tokenize', '--vocab', bertVocab, '-'], '一\r\n二三\n');
    expect(stdin.out.trim().split('\n').map((l) => JSON.parse(l).tokens)).toEqual([
      ['[CLS]', '一', '[SEP]'],
      ['[CLS]', '二', '三', '[SEP]'],
    ]);
  });

  it('uses the bundled vocabulary of the tokenizer when --vocab is not given', async () => {
    const bert = await run(['tokenize', '北京']);
    expect(bert.code).toBe(0);
    expect(JSON.parse(bert.out)).toEqual(JSON.parse((await run(['tokenize', '--vocab', bertVocab, '北京'])).out));
    const t5 = await run(['tokenize', '--t5-pegasus', '李嘉诚回应质疑']);
    expect(JSON.parse(t5.out).tokens).toEqual(['[CLS]', '李嘉诚', '回应', '质疑', '[SEP]']);
  });

  it('fails clearly: usage mistakes exit 2, runtime errors exit 1 with the code', async () => {
    const missing = await run(['tokenize', '--vocab', path.join(repoRoot, 'no/such/vocab.txt'), 'x']);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^kexue: error \[E_IO\]: cannot read vocabulary .*no\/such\/vocab\.txt/);
    const noText = await run(['tokenize', '--vocab', bertVocab]);
    expect(noText).toMatchObject({ code: 2 });
    expect(noText.err).toContain('missing TEXT');
    expect(noText.err).toContain("kexue tokenize --help");
    const typo = await run(['tokenize', '--vocb', bertVocab, 'x']);
    expect(typo.code).toBe(2);
    expect(typo.err).toContain("unknown option '--vocb' for 'tokenize' (did you mean --vocab?)");
    const extra = await run(['tokenize', '--vocab', bertVocab, 'a', 'b']);
    expect(extra.err).toContain("unexpected argument 'b'");
    const badNum = await run(['tokenize', '--vocab', bertVocab, '--max-length', '2.5', 'a']);
    expect(badNum.err).toContain('--max-length expects an integer');
    const t5cased = await run(['tokenize', '--vocab', t5Vocab, '--t5-pegasus', '--no-lowercase', 'a']);
    expect(t5cased.code).toBe(2);
    const twice = await run(['tokenize', '--vocab', bertVocab, '--vocab', bertVocab, 'a']);
    expect(twice.err).toContain('more than once');
    const flagValue = await run(['tokenize', '--vocab', bertVocab, '--t5-pegasus=yes', 'a']);
    expect(flagValue.err).toContain('takes no value');
  });
});

describe('kexue (framework)', () => {
  it('lists the commands in --help and shows command help', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    for (const c of commands) expect(help.out).toContain(c.name);
    const sub = await run(['tokenize', '--help']);
    expect(sub.out).toContain('Usage: kexue tokenize [options] TEXT');
    expect(sub.out).toContain('--max-length N');
    expect((await run(['help', 'info'])).out).toContain('Usage: kexue info');
    expect((await run(['--version'])).out.trim()).toBe(version);
    const none = await run([]);
    expect(none.code).toBe(2);
    expect(none.err).toContain('Commands:');
  });

  it('rejects unknown commands and top-level options with a suggestion', async () => {
    const r = await run(['tokenise', 'x']);
    expect(r.code).toBe(2);
    expect(r.err).toBe("kexue: unknown command 'tokenise' (did you mean 'tokenize'?)\nRun 'kexue --help' for usage.\n");
    expect((await run(['frobnicate'])).err).toContain("unknown command 'frobnicate'\n");
    expect((await run(['--verbose'])).code).toBe(2);
    expect((await run(['help', 'nope'])).code).toBe(2);
  });

  it('parses options by spec: defaults, --no-, short names, repeatable, -- and negative numbers', () => {
    const cmd: Command = {
      name: 't',
      summary: '',
      options: [
        { name: 'rate', type: 'number', short: 'r', description: '', default: 0.5 },
        { name: 'flag', type: 'boolean', description: '', default: true },
        { name: 'set', type: 'string', description: '', repeatable: true },
      ],
      positionals: [{ name: 'files', description: '', variadic: true }],
      run: async () => 0,
    };
    expect(parseArgs(cmd, [])).toEqual({ options: { rate: 0.5, flag: true }, positionals: { files: [] } });
    expect(parseArgs(cmd, ['-r', '-2', '--no-flag', '--set', 'a=1', '--set=b=2', 'x', '--', '--y'])).toEqual({
      options: { rate: -2, flag: false, set: ['a=1', 'b=2'] },
      positionals: { files: ['x', '--y'] },
    });
  });

  it('runs info with the build and devices of core-cuda', async () => {
    const r = await run(['info', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.build).toEqual(kx.buildInfo());
    expect(j.devices).toEqual(kx.devices());
    const text = await run(['info']);
    expect(text.out).toContain(`BLAS ${kx.buildInfo().blas}`);
    expect(text.out).toMatch(/devices:\n {2}cpu/);
  });
});

describe('kexue bench', () => {
  it('lists the cases, runs one into --out and rejects bad arguments', async () => {
    const list = await run(['bench', '--list']);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/^bert-small-train-step +BERT-small/m);
    const dir = mkdtempSync(path.join(tmpdir(), 'kexue-bench-'));
    try {
      const out = path.join(dir, 'r.json');
      const r = await run(['bench', '--case', 'softmax-2048x1000', '--rounds', '1', '--threads', '1', '--no-torch', '--no-peaks', '--out', out]);
      expect(r.code).toBe(0);
      const report = JSON.parse(readFileSync(out, 'utf8'));
      expect(report.threads).toBe(1);
      expect(report.results.map((x: { case: string }) => x.case)).toEqual(['softmax-2048x1000']);
      expect(report.results[0].kexue_ms).toBeGreaterThan(0);
      expect(report.results[0].torch_ms).toBeNull();
      expect(readFileSync(out.replace(/json$/, 'md'), 'utf8')).toContain('| softmax-2048x1000 |');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect((await run(['bench', '--rounds', '0'])).code).toBe(2);
    const unknown = await run(['bench', '--case', 'nope', '--no-torch', '--no-peaks']);
    expect(unknown.code).toBe(1);
    expect(unknown.err).toContain("unknown case 'nope'");
  });
});

describe('bin/kexue.js', () => {
  const bin = path.join(repoRoot, 'packages/cli/bin/kexue.js');
  it('runs as a process with exit codes', () => {
    const ok = spawnSync(process.execPath, [bin, 'tokenize', '--vocab', bertVocab, '北京'], { encoding: 'utf8' });
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout).tokens).toEqual(['[CLS]', '北', '京', '[SEP]']);
    const bad = spawnSync(process.execPath, [bin, 'nope'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("unknown command 'nope'");
  });

  it('ends quietly when its reader goes away (EPIPE)', () => {
    // `head -c 1` closes the pipe after one byte, and the list is written a line at a time
    const r = spawnSync('sh', ['-c', `"${process.execPath}" "${bin}" bench --list | head -c 1 >/dev/null`], { encoding: 'utf8' });
    expect(r.stderr).not.toContain('EPIPE');
  });
});
