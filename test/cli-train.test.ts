/**
 * End to end through the real `kexue` process: a tiny NER run (2-layer hidden-32 RoFormer +
 * Efficient GlobalPointer on the shipped CLUENER sample) trained, interrupted and resumed with
 * bitwise-equal losses, evaluated and used for prediction; an MLM run whose encoder starts a NER
 * run; and bad input (missing/malformed data, unknown key, wrong type, another architecture) that
 * fails with one message, a non-zero exit code and an untouched run directory.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { snapshot } from '../packages/cli/test/dir_snapshot.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(root, 'packages/cli/bin/kexue.js');
let tmp: string;

function kexue(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, KEXUE_NUM_THREADS: '1', KEXUE_PROGRESS: 'lines' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const TINY = ['model.hidden=32', 'model.layers=2', 'model.heads=2', 'model.intermediate=64', 'head.size=16', 'data.max_length=48', 'train.batch_size=8', 'train.steps=24', 'train.log_every=2', 'train.eval_every=12', 'optim.lr=5e-3'];

const trainLosses = (dir: string) =>
  readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number | string>).filter((r) => r.kind === 'train');

beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'kexue-e2e-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('kexue train summarize → eval → predict', () => {
  const TINY_T5 = [
    'model.d_model=32',
    'model.d_kv=8',
    'model.heads=2',
    'model.d_ff=32',
    'model.layers=1',
    'model.decoder_layers=1',
    'data.max_source=64',
    'data.max_target=12',
    'data.dev_limit=8',
    'train.batch_size=8',
    'train.steps=6',
    'train.log_every=2',
    'train.eval_every=6',
    'optim.lr=5e-3',
  ];
  let run: string;

  it('trains a tiny T5 on the shipped CSL sample and scores its generated titles beside the lead baseline', () => {
    run = path.join(tmp, 'summarize');
    const r = kexue('train', 'summarize', ...TINY_T5, '--run-dir', run);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/dev ROUGE-L \d+\.\d\d, ROUGE-1 .*BLEU .*\(lead baseline: ROUGE-L \d+\.\d\d/);
    const losses = trainLosses(run);
    expect(losses.map((l) => l.step)).toEqual([2, 4, 6]);
    for (const l of losses) expect(Number.isFinite(l.loss)).toBe(true);
    const evals = readFileSync(path.join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number | string>).filter((x) => x.kind === 'eval');
    expect(evals.map((e) => e.step)).toEqual([6]);
    for (const k of ['rougeL', 'rouge1', 'rouge2', 'bleu', 'lead_rougeL']) expect(evals[0]![k]).toBeGreaterThanOrEqual(0);
    expect(evals[0]!.lead_rougeL).toBeGreaterThan(10); // the lead of CSL abstracts shares characters with their titles
  });

  it('evaluates on a file of pairs and predicts titles', () => {
    const dev = path.join(tmp, 'dev8.tsv');
    writeFileSync(dev, `${readFileSync(path.join(root, 'packages/models/demo/csl/dev.tsv'), 'utf8').split('\n').slice(0, 8).join('\n')}\n`);
    const e = kexue('eval', 'summarize', run, '--data', dev);
    expect(e.code, e.stderr).toBe(0);
    const scores = JSON.parse(e.stdout.trim()) as Record<string, number | Record<string, number>>;
    expect(scores.pairs).toBe(8);
    const evals = readFileSync(path.join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number | string>).filter((x) => x.kind === 'eval');
    // the same 8 pairs and decoding as the run's evaluation: the same scores
    expect(scores.rougeL).toBeCloseTo(evals[0]!.rougeL as number, 1);
    expect((scores.lead as Record<string, number>).rougeL).toBeCloseTo(evals[0]!.lead_rougeL as number, 1);
    const p = kexue('predict', 'summarize', run, '本文研究了基于深度学习的中文文本摘要方法', '--beams', '2');
    expect(p.code, p.stderr).toBe(0);
    const line = JSON.parse(p.stdout.trim()) as { text: string; summary: string };
    expect(line.text).toBe('本文研究了基于深度学习的中文文本摘要方法');
    expect(typeof line.summary).toBe('string');
  });

  it('streams the greedy title token by token: the text predict prints with one beam', () => {
    const text = '本文研究了基于深度学习的中文文本摘要方法';
    const g = kexue('generate', 'summarize', run, text);
    expect(g.code, g.stderr).toBe(0);
    const p = kexue('predict', 'summarize', run, text);
    expect(g.stdout).toBe(`${(JSON.parse(p.stdout.trim()) as { summary: string }).summary}\n`);
    const a = kexue('generate', 'summarize', run, text, '--sample', '--seed', '5', '--temperature', '2');
    const b = kexue('generate', 'summarize', run, text, '--sample', '--seed', '5', '--temperature', '2');
    expect(a.code).toBe(0);
    expect(a.stdout).toBe(b.stdout);
  });
});

describe('kexue train pegasus → summarize init=RUN', () => {
  it('pre-trains on pseudo-summaries of the CSL abstracts, and its best checkpoint starts a summarization run', () => {
    const T5 = ['model.d_model=32', 'model.d_kv=8', 'model.heads=2', 'model.d_ff=32', 'model.layers=1', 'model.decoder_layers=1'];
    const pre = path.join(tmp, 'pegasus');
    const p = kexue('train', 'pegasus', ...T5, 'data.max_source=96', 'data.max_target=32', 'train.batch_size=8', 'train.steps=6', 'train.log_every=3', 'train.eval_every=6', '--run-dir', pre);
    expect(p.code, p.stderr).toBe(0);
    expect(p.stderr).toMatch(/pegasus: \d+ train \/ \d+ dev pseudo-summary pairs/);
    expect(p.stderr).toMatch(/dev loss \d+\.\d{4} \(pseudo-summaries, per target token\)/);
    const fine = path.join(tmp, 'summarize-from-pegasus');
    const s = kexue('train', 'summarize', `init=${pre}`, 'data.max_source=64', 'data.max_target=12', 'data.dev_limit=4', 'train.batch_size=8', 'train.steps=2', 'train.eval_every=2', '--run-dir', fine);
    expect(s.code, s.stderr).toBe(0);
    expect(s.stderr).toContain('from pegasus');
    // init's architecture, not model.*'s defaults (d_model 128): the run's checkpoint has d_model 32
    const bad = kexue('train', 'summarize', `init=${path.join(tmp, 'summarize-from-pegasus')}`, 'model.vocab=packages/models/vocab/bert-base-chinese/vocab.txt', '--run-dir', path.join(tmp, 'never'));
    expect(bad.code).toBe(1);
    expect(existsSync(path.join(tmp, 'never'))).toBe(false);
  });
});

describe('kexue train ner → resume → eval → predict', () => {
  let full: string;
  let resumed: string;

  it('trains a tiny run and writes config, metrics and checkpoints', () => {
    full = path.join(tmp, 'full');
    const r = kexue('train', 'ner', ...TINY, '--run-dir', full);
    expect(r.stderr).toContain('dev F1');
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as { step: number; dev: { f1: number } };
    expect(summary.step).toBe(24);
    expect(summary.dev.f1).toBeGreaterThanOrEqual(0);
    const config = JSON.parse(readFileSync(path.join(full, 'config.json'), 'utf8')) as { model: { hidden: number }; train: { steps: number } };
    expect(config.model.hidden).toBe(32);
    const losses = trainLosses(full);
    expect(losses.map((l) => l.step)).toEqual([2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24]);
    for (const l of losses) for (const k of ['loss', 'lr', 'grad_norm', 'tokens_per_s']) expect(Number.isFinite(l[k])).toBe(true);
    expect(losses[losses.length - 1]!.loss as number).toBeLessThan(losses[0]!.loss as number);
    const evals = readFileSync(path.join(full, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind: string; step: number; f1: number }).filter((x) => x.kind === 'eval');
    expect(evals.map((e) => e.step)).toEqual([12, 24]);
    const index = JSON.parse(readFileSync(path.join(full, 'checkpoints.json'), 'utf8')) as { last: { dir: string; step: number } };
    expect(index.last.step).toBe(24);
    for (const f of ['model.safetensors', 'optimizer.safetensors', 'trainer.json', 'vocab.txt', 'config.json']) expect(existsSync(path.join(full, index.last.dir, f))).toBe(true);
  });

  it('resumes an interrupted run with bitwise-equal losses', () => {
    resumed = path.join(tmp, 'resumed');
    const first = kexue('train', 'ner', ...TINY, 'train.stop_at=9', '--run-dir', resumed);
    expect(first.code).toBe(0);
    expect(trainLosses(resumed).map((l) => l.step)).toEqual([2, 4, 6, 8]);
    const second = kexue('train', 'ner', '--resume', resumed);
    expect(second.stderr).toContain('resuming at step 9');
    expect(second.code).toBe(0);
    const a = trainLosses(full);
    const b = trainLosses(resumed);
    expect(b.map((l) => [l.step, l.loss, l.lr, l.grad_norm])).toEqual(a.map((l) => [l.step, l.loss, l.lr, l.grad_norm]));
  });

  it('evaluates a run (overall and per type)', () => {
    const r = kexue('eval', 'ner', full, '--data', 'packages/models/demo/cluener/dev.jsonl', '--per-type');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, number | string>);
    expect(lines[0]!.records).toBe(500);
    expect(lines[0]!.gold).toBeGreaterThan(1000);
    for (const k of ['precision', 'recall', 'f1']) expect(lines[0]![k]).toBeGreaterThanOrEqual(0);
    expect(lines.slice(1).map((l) => l.type)).toContain('name');
    const evals = readFileSync(path.join(full, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind: string; f1: number }).filter((x) => x.kind === 'eval');
    // the best checkpoint's dev F1 recomputed by `kexue eval` is the one recorded during training
    expect(lines[0]!.f1).toBeCloseTo(Math.max(...evals.map((e) => e.f1)), 5);
  });

  it('predicts entities with character offsets', () => {
    const texts = ['浙商银行企业信贷部叶老桂博士则从另一个角度', '那不勒斯vs锡耶纳'];
    const input = path.join(tmp, 'texts.txt');
    writeFileSync(input, `${texts.join('\n')}\n`);
    for (const r of [kexue('predict', 'ner', full, ...texts), kexue('predict', 'ner', full, '--input', input)]) {
      expect(r.code).toBe(0);
      const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { text: string; entities: { start: number; end: number; type: string; text: string }[] });
      expect(lines.map((l) => l.text)).toEqual(texts);
      for (const l of lines) for (const e of l.entities) expect(l.text.slice(e.start, e.end)).toBe(e.text);
    }
  });

  it('refuses a checkpoint whose weights changed since they were written: one message naming the file, exit 1', () => {
    const damaged = path.join(tmp, 'damaged');
    cpSync(full, damaged, { recursive: true });
    const index = JSON.parse(readFileSync(path.join(damaged, 'checkpoints.json'), 'utf8')) as { best: { dir: string } };
    const file = path.join(damaged, index.best.dir, 'model.safetensors');
    const bytes = readFileSync(file);
    bytes[bytes.length - 2]! ^= 0x01; // inside the last tensor's data
    writeFileSync(file, bytes);
    for (const r of [kexue('eval', 'ner', damaged), kexue('predict', 'ner', damaged, '浙商银行')]) {
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/\[E_FORMAT\]: checkpoint .*model\.safetensors is corrupt: its SHA-256 does not match the one recorded when it was written/);
    }
  });
});

describe('kexue train mlm and init', () => {
  it('pretrains a masked LM and starts a NER run from its encoder', () => {
    const mlm = path.join(tmp, 'mlm');
    const r = kexue('train', 'mlm', 'model.hidden=32', 'model.layers=2', 'model.heads=2', 'model.intermediate=64', 'train.batch_size=8', 'train.steps=6', 'train.log_every=3', 'train.eval_every=6', '--run-dir', mlm);
    expect(r.code).toBe(0);
    const trained = JSON.parse(r.stdout.trim()) as { dev: { loss: number; accuracy: number } };
    expect(trained.dev.accuracy).toBeGreaterThanOrEqual(0);
    expect(r.stderr).toMatch(/dev loss \d+\.\d{4}, accuracy \d\.\d{4}; best loss .* at step 6; trained for \d+:\d\d; run /);
    // kexue eval mlm recomputes the recorded dev loss and accuracy (the same masked positions)
    const e = kexue('eval', 'mlm', mlm);
    expect(e.code).toBe(0);
    const evaluated = JSON.parse(e.stdout) as { loss: number; accuracy: number; texts: number };
    expect(evaluated.loss).toBeCloseTo(trained.dev.loss, 5);
    expect(evaluated.accuracy).toBeCloseTo(trained.dev.accuracy, 5);
    expect(evaluated.texts).toBe(500);
    const ner = path.join(tmp, 'from-mlm');
    const n = kexue('train', 'ner', ...TINY.filter((k) => !k.startsWith('train.steps')), 'train.steps=2', `init=${mlm}`, '--run-dir', ner);
    expect(n.code).toBe(0);
    // another architecture: one message naming the difference, exit code 1, no run directory made
    const bad = path.join(tmp, 'bad-init');
    const b = kexue('train', 'ner', ...TINY, 'model.hidden=64', `init=${mlm}`, '--run-dir', bad);
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/\[E_FORMAT\].*another architecture.*model\.hidden is 32 there, 64 here/);
    expect(existsSync(bad)).toBe(false);
  });
});

describe('bad input', () => {
  let run: string;
  let before: Record<string, string>;
  beforeAll(() => {
    run = path.join(tmp, 'existing');
    expect(kexue('train', 'ner', ...TINY.filter((k) => !k.startsWith('train.steps')), 'train.steps=2', '--run-dir', run).code).toBe(0);
    before = snapshot(run);
  });

  const cases: [string, string[], number, RegExp][] = [
    ['a missing data file', ['data.train=nope/missing.jsonl'], 1, /\[E_IO\].*missing\.jsonl/],
    ['a malformed data file', ['data.train=BAD'], 1, /\[E_FORMAT\].*bad\.jsonl:2: invalid JSON/],
    ['an unknown key', ['model.hiden=64'], 2, /unknown config key 'model\.hiden' \(did you mean 'model\.hidden'\?\)/],
    ['a value of the wrong type', ['train.batch_size=many'], 2, /config key train\.batch_size: expected an integer, got "many"/],
    ['a value outside the choices', ['head.kind=crf'], 2, /config key head\.kind: expected one of egp, gp/],
  ];
  for (const [what, extra, code, message] of cases) {
    it(`${what}: one message, exit ${code}, the run directory untouched`, () => {
      const bad = path.join(tmp, 'bad.jsonl');
      writeFileSync(bad, '{"text": "浙商银行", "label": {}}\n{"text": broken\n');
      const args = extra.map((a) => a.replace('BAD', bad));
      const r = kexue('train', 'ner', ...TINY, ...args, '--run-dir', run);
      expect(r.code).toBe(code);
      expect(r.stderr).toMatch(message);
      expect(r.stderr.trim().split('\n').length).toBeLessThanOrEqual(2);
      expect(snapshot(run)).toEqual(before);
    });
  }

  it('refuses to train into an existing run directory', () => {
    const r = kexue('train', 'ner', ...TINY, '--run-dir', run);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/already exists and is not empty: continue it with --resume/);
    expect(snapshot(run)).toEqual(before);
  });

  it('a YAML config file with a wrong type names the key and the file', () => {
    const file = path.join(tmp, 'bad.yaml');
    writeFileSync(file, 'model:\n  layers: two\n');
    const r = kexue('train', 'ner', '--config', file, '--run-dir', path.join(tmp, 'never'));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/config key model\.layers in .*bad\.yaml: expected an integer, got "two"/);
    expect(existsSync(path.join(tmp, 'never'))).toBe(false);
  });

  it('resume refuses to change the architecture, and eval refuses another task\'s run', () => {
    const r = kexue('train', 'ner', '--resume', run, 'model.hidden=64');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/config key model\.hidden cannot change when resuming/);
    expect(snapshot(run)).toEqual(before);
    const e = kexue('eval', 'ner', path.join(tmp, 'mlm'));
    expect(e.code).toBe(1);
    expect(e.stderr).toMatch(/is a mlm run, not a ner run/);
    const m = kexue('eval', 'mlm', run);
    expect(m.code).toBe(1);
    expect(m.stderr).toMatch(/is a ner run, not a mlm run/);
  });
});
