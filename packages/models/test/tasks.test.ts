/**
 * The task contract: config keys declared once and resolved in order (defaults, file, values,
 * overrides; a resume's own config with only resumable keys changeable), every mistake a
 * RequestError naming the key, paths resolved against the working directory, the learning rate
 * of `optim.lr = 0` from the task's recipe or the optimizer's own default, and the registry.
 */
import path from 'node:path';

import { AdamW, Lion, Tiger } from '@kexue/optimizers';
import { describe, expect, it } from 'vitest';

import {
  FROM_SCRATCH_LR,
  RUN_KEYS,
  RequestError,
  TASKS,
  choice,
  configKeys,
  getTask,
  integer,
  learningRate,
  mlmTask,
  nerTask,
  number,
  pathKey,
  previewValues,
  resolveConfig,
  string,
  type NerConfig,
} from '@kexue/models';

import { expectCode } from '../../core-cuda/test/helpers.js';

const SPEC = {
  data: { file: pathKey('file', '', 'a file'), size: integer(4, 'a size', { min: 1, max: 8 }) },
  rate: number(0.5, 'a rate', { min: 0 }),
  mode: choice(['a', 'b'], 'a', 'a mode'),
  tag: string('x', 'a tag', { rule: { test: (v) => v.startsWith('x'), expected: 'a tag starting with x' } }),
  stop: integer(0, 'run control', { min: 0, resumable: true }),
  place: string('here', 'kept on resume', { resumable: true, keptOnResume: true }),
};

/** The message of the RequestError fn throws. */
function mistake(fn: () => unknown): string {
  const err = expectCode(fn, 'E_ARG');
  expect(err).toBeInstanceOf(RequestError);
  return err.message;
}

describe('config keys', () => {
  it('resolve defaults, then a file, then values, then key=value overrides (a later one wins), nested by the dots', () => {
    const c = resolveConfig('t', SPEC, { file: { name: 'f.yaml', values: { data: { size: 5 }, rate: 1 } }, values: { rate: 2 }, overrides: ['mode=b', 'data.size=6', 'data.size=7'] });
    expect(c).toEqual({ task: 't', data: { file: '', size: 7 }, rate: 2, mode: 'b', tag: 'x', stop: 0, place: 'here' });
    // the inferred type: a mistyped use is a compile error in this file
    const size: number = c.data.size;
    const mode: 'a' | 'b' = c.mode;
    expect([size, mode]).toEqual([7, 'b']);
  });

  it('name the key, the source and what was expected for every mistake', () => {
    expect(mistake(() => resolveConfig('t', SPEC, { overrides: ['data.sise=3'] }))).toMatch(/^unknown config key 'data\.sise' \(did you mean 'data\.size'\?\)/);
    expect(mistake(() => resolveConfig('t', SPEC, { overrides: ['data.size=many'] }))).toBe('config key data.size: expected an integer, got "many"');
    expect(mistake(() => resolveConfig('t', SPEC, { overrides: ['data.size=2.5'] }))).toBe('config key data.size: expected an integer, got "2.5"');
    expect(mistake(() => resolveConfig('t', SPEC, { overrides: ['data.size=0'] }))).toBe('config key data.size: must be at least 1, got 0');
    expect(mistake(() => resolveConfig('t', SPEC, { overrides: ['data.size=9'] }))).toBe('config key data.size: must be at most 8, got 9');
    expect(mistake(() => resolveConfig('t', SPEC, { overrides: ['mode=c'] }))).toBe('config key mode: expected one of a, b, got "c"');
    expect(mistake(() => resolveConfig('t', SPEC, { overrides: ['tag=y'] }))).toBe('config key tag: expected a tag starting with x, got "y"');
    expect(mistake(() => resolveConfig('t', SPEC, { overrides: ['rate'] }))).toBe("expected key=value, got 'rate'");
    expect(mistake(() => resolveConfig('t', SPEC, { file: { name: 'f.yaml', values: { rate: 'fast' } } }))).toBe('config key rate in f.yaml: expected a number, got "fast"');
    expect(mistake(() => resolveConfig('t', SPEC, { file: { name: 'f.yaml', values: { task: 'u' } } }))).toBe('config in f.yaml is for task "u", not t');
    expect(mistake(() => resolveConfig('t', SPEC, { values: { mode: 3 } }))).toBe('config key mode: expected one of a, b, got 3');
  });

  it('on resume keep the run config, restart run-control keys from their defaults, keep the device-like ones, and refuse other changes', () => {
    const base = { task: 't', data: { file: '', size: 3 }, rate: 1, mode: 'b', tag: 'x1', stop: 5, place: 'there' };
    expect(resolveConfig('t', SPEC, { base })).toEqual({ ...base, stop: 0 });
    expect(resolveConfig('t', SPEC, { base, overrides: ['stop=7', 'place=elsewhere', 'mode=b'] })).toMatchObject({ stop: 7, place: 'elsewhere', mode: 'b' });
    expect(mistake(() => resolveConfig('t', SPEC, { base, overrides: ['data.size=4'] }))).toBe('config key data.size cannot change when resuming a run (only stop, place can)');
    expect(mistake(() => resolveConfig('t', SPEC, { base: { ...base, rate: 'x' } }))).toBe('config key rate in the run\'s config.json: expected a number, got "x"');
  });

  it('resolve paths against the working directory and leave empty ones empty', () => {
    expect(resolveConfig('t', SPEC, { overrides: ['data.file=a/b.txt'], cwd: '/work' }).data.file).toBe(path.resolve('/work', 'a/b.txt'));
    expect(resolveConfig('t', SPEC, { overrides: ['data.file=/abs/c.txt'], cwd: '/work' }).data.file).toBe('/abs/c.txt');
    expect(resolveConfig('t', SPEC, { cwd: '/work' }).data.file).toBe('');
  });

  it('preview the values --help shows, skipping overrides that do not parse', () => {
    expect(previewValues(SPEC, ['mode=b', 'data.size=many', 'nokey=1'])).toMatchObject({ mode: 'b', 'data.size': 4 });
    expect(configKeys(SPEC).map(([name]) => name)).toEqual(['data.file', 'data.size', 'rate', 'mode', 'tag', 'stop', 'place']);
  });
});

describe('learning rates', () => {
  it('optim.lr = 0 takes the recipe rate, else the optimizer default; the help says which', () => {
    expect(learningRate({ name: 'tiger', lr: 0 }, FROM_SCRATCH_LR)).toBe(FROM_SCRATCH_LR.tiger);
    expect(learningRate({ name: 'tiger', lr: 0 }, {})).toBe(Tiger.defaults.learningRate);
    expect(learningRate({ name: 'lion', lr: 0 }, FROM_SCRATCH_LR)).toBe(Lion.defaults.learningRate);
    expect(learningRate({ name: 'adamw', lr: 0 }, FROM_SCRATCH_LR)).toBe(AdamW.defaults.learningRate);
    expect(learningRate({ name: 'adamw', lr: 3e-5 }, FROM_SCRATCH_LR)).toBe(3e-5);
    const lr = new Map(nerTask.keys).get('optim.lr')!;
    const shown = (name: string) => lr.showDefault!(previewValues(Object.fromEntries(nerTask.keys), [`optim.name=${name}`]));
    expect(shown('tiger')).toBe(`0 = ${FROM_SCRATCH_LR.tiger} (this task's rate for tiger; its own default is ${Tiger.defaults.learningRate})`);
    expect(shown('lion')).toBe(`0 = ${Lion.defaults.learningRate} (lion's default)`);
  });
});

describe('the registry', () => {
  it('holds the NER, MLM, summarization, PEGASUS and VAE tasks, each with the run keys, and names an unknown task', () => {
    expect(TASKS.map((t) => t.name)).toEqual(['ner', 'mlm', 'summarize', 'pegasus', 'vae']);
    for (const t of TASKS) {
      const names = t.keys.map(([n]) => n);
      for (const k of [...Object.keys(RUN_KEYS), 'optim.lr', 'train.seed']) expect(names).toContain(k);
      expect(getTask(t.name)).toBe(t);
    }
    expect(mistake(() => getTask('nre'))).toBe("unknown task 'nre' (did you mean 'ner'?) (tasks: ner, mlm, summarize, pegasus, vae)");
    expect(nerTask.commands.eval && nerTask.commands.predict && mlmTask.commands.eval).toBeTruthy();
  });

  it('resolves a task config typed from its keys, with the demo data found next to the package', () => {
    const c: NerConfig = nerTask.resolve({ overrides: ['model.hidden=32'] });
    expect(c.task).toBe('ner');
    expect(c.model.hidden).toBe(32);
    expect(c.data.train).toMatch(/packages\/models\/demo\/cluener\/train\.jsonl$/);
    expect(c.optim).toEqual({ name: 'tiger', lr: 0, weight_decay: 0.01, clip_norm: 0, schedule: 'constant', warmup: 0 });
  });
});
