/**
 * `train.compile`: the NER and MLM tasks trained through the task API with every update compiled
 * (the micro-steps, their sum and the update as kx.compile'd programs over padded batches) give the
 * eager runs' losses within 2e-3 relative at every update (compile_train.test.ts explains the
 * tolerance; padding adds masked positions and ignored rows, which change no value), over updates
 * with gradient accumulation and evaluations between them; the runs trace one micro-step per padded
 * batch shape and replay the rest; a compiled run stopped and resumed computes what the
 * uninterrupted compiled run does; and the combinations a compiled update cannot run are config
 * mistakes naming the keys, before anything is written.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  COMPILE_PAD_MULTIPLE,
  Dataset,
  RequestError,
  encodeNer,
  entityTypes,
  flatten,
  loadTokenizer,
  mlmTask,
  nerBatch,
  nerTask,
  paddedLength,
  readMetrics,
  readNerData,
  vaeTask,
  vocabFile,
  type ConfigValues,
  type MlmConfig,
  type NerConfig,
} from '@kexue/models';
import * as kx from '@kexue/core-cuda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { expectCode } from '../../core-cuda/test/helpers.js';

const TOLERANCE = 2e-3;
const STEPS = 8;
const ACCUM = 2;
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const DEMO = path.join(repoRoot, 'packages/models/demo/cluener');

let tmp: string;
/** The first 24 records of the demo's dev file (evaluations stay fast). */
let dev: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'kexue-compile-task-'));
  dev = path.join(tmp, 'dev.jsonl');
  writeFileSync(dev, `${readFileSync(path.join(DEMO, 'dev.jsonl'), 'utf8').trim().split('\n').slice(0, 24).join('\n')}\n`);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const loop = { batch_size: 8, steps: STEPS, grad_accum: ACCUM, log_every: 1, eval_every: 4, threads: 1 };
const NER: ConfigValues<NerConfig> = {
  data: { max_length: 128 },
  model: { hidden: 32, layers: 1, heads: 2, intermediate: 64 },
  head: { size: 16 },
  // clipping below the gradients' norm, so the compiled steps clip on the device
  optim: { clip_norm: 0.5, warmup: 3 },
  train: loop,
};
const MLM: ConfigValues<MlmConfig> = {
  data: { max_length: 40 },
  model: { hidden: 32, layers: 1, heads: 2, intermediate: 64 },
  optim: { clip_norm: 0.5 },
  train: loop,
};
const withValues = <C>(base: ConfigValues<C>, extra: Record<string, unknown>) => ({ ...flatten(base as Record<string, unknown>), ...extra }) as ConfigValues<C>;

type Record_ = ReturnType<typeof readMetrics>[number];
const records = (dir: string, kind: string): Record_[] => readMetrics(path.join(dir, 'metrics.jsonl')).filter((r) => r.kind === kind);

/** Each update's loss compiled within TOLERANCE of eager; the same evaluations at the same steps. */
function expectSameRun(eager: string, compiled: string): void {
  const [e, c] = [records(eager, 'train'), records(compiled, 'train')];
  expect(c.map((r) => r.step)).toEqual(e.map((r) => r.step));
  expect(e.length).toBe(STEPS);
  e.forEach((r, i) => {
    const [a, b] = [r.loss as number, c[i]!.loss as number];
    expect(Math.abs(b - a) / Math.abs(a), `step ${r.step}: eager ${a}, compiled ${b}`).toBeLessThanOrEqual(TOLERANCE);
    expect(Math.abs((c[i]!.grad_norm as number) - (r.grad_norm as number)) / (r.grad_norm as number)).toBeLessThanOrEqual(TOLERANCE);
    expect(c[i]!.lr).toBe(r.lr);
  });
  const [ee, ce] = [records(eager, 'eval'), records(compiled, 'eval')];
  expect(ce.map((r) => r.step)).toEqual([4, 8]);
  expect(ee.map((r) => r.step)).toEqual([4, 8]);
  ee.forEach((r, i) => {
    for (const [k, v] of Object.entries(r)) if (k !== 'eval_s' && typeof v === 'number') expect(Math.abs((ce[i]![k] as number) - v), k).toBeLessThanOrEqual(TOLERANCE * Math.max(1, Math.abs(v)));
  });
  // an eager run's records have no counts
  expect(e.every((r) => r.compile_traces === undefined)).toBe(true);
}

/** The distinct padded shapes (n, P) of a compiled NER run's micro-batches (the loader's batches, padded as the task pads them). */
async function nerShapes(c: NerConfig): Promise<Set<string>> {
  const tokenizer = loadTokenizer(vocabFile(c.model));
  const train = await readNerData(c.data.train);
  const labels = entityTypes(train);
  const loader = new Dataset(encodeNer(train, tokenizer, labels, c.data.max_length)).batches({ batchSize: c.train.batch_size, shuffle: true, seed: c.train.seed });
  const shapes = new Set<string>();
  for (let i = 0; i < STEPS * ACCUM; i++) {
    const b = nerBatch(loader.next().records, labels.length, tokenizer.padId, 'cpu', { multiple: COMPILE_PAD_MULTIPLE, maxLength: c.data.max_length });
    shapes.add(`${b.ids.shape} ${b.labels.shape}`);
    [b.ids, b.mask, b.labels].forEach((t) => t.dispose());
  }
  return shapes;
}

describe('train.compile', () => {
  it('pads a length up to a multiple, never beyond the cap nor below the longest', () => {
    expect([paddedLength(17, 16), paddedLength(16, 16), paddedLength(1, 16), paddedLength(17, 1)]).toEqual([32, 16, 16, 17]);
    expect([paddedLength(33, 16, 40), paddedLength(40, 16, 40), paddedLength(45, 16, 40)]).toEqual([40, 40, 45]);
  });

  it('NER: the compiled run gives the eager losses, one trace per padded batch shape, the rest replays', async () => {
    const eager = path.join(tmp, 'ner-eager');
    const compiled = path.join(tmp, 'ner-compiled');
    // the eager run pads as the compiled one does by default, so that dropout draws the same masks
    await nerTask.train({ values: withValues(NER, { 'data.dev': dev, 'train.pad_multiple': COMPILE_PAD_MULTIPLE }), runDir: eager });
    await nerTask.train({ values: withValues(NER, { 'data.dev': dev }), overrides: ['train.compile=true'], runDir: compiled });
    expectSameRun(eager, compiled);
    const shapes = await nerShapes(nerTask.resolve({ values: NER }) as NerConfig);
    expect(shapes.size).toBeGreaterThan(1); // lengths vary: the padding bounds the traces, not a fixed length
    const last = records(compiled, 'train').at(-1)!;
    // one micro-step per shape, the sum of two micro-batches' gradients, the update
    expect(last.compile_traces).toBe(shapes.size + 2);
    // every call: STEPS × ACCUM micro-steps, STEPS × (ACCUM − 1) sums, STEPS updates
    expect((last.compile_traces as number) + (last.compile_replays as number)).toBe(STEPS * ACCUM + STEPS * (ACCUM - 1) + STEPS);
  });

  it('frees its programs however the run ends: a run that throws mid-way leaves no more tensors alive than one that finishes', async () => {
    const allocated = () => kx.memory().bytes;
    const values = withValues(NER, { 'data.dev': dev });
    const before = allocated();
    await nerTask.train({ values, overrides: ['train.compile=true'], runDir: path.join(tmp, 'ner-compiled-free-done') });
    const afterDone = allocated() - before;
    const failure = new Error('observer failed at step 3');
    const thrown = nerTask.train({
      values,
      overrides: ['train.compile=true'],
      runDir: path.join(tmp, 'ner-compiled-free-thrown'),
      onEvent: (e) => {
        if (e.type === 'log' && e.record.step === 3) throw failure;
      },
    });
    await expect(thrown).rejects.toBe(failure);
    // a program's buffers and constants are native memory: still allocated here if it was not freed
    expect(allocated() - before - afterDone).toBe(afterDone);
  });

  it('MLM: the compiled run (host masking as inputs, padded masked positions ignored) gives the eager losses', async () => {
    const eager = path.join(tmp, 'mlm-eager');
    const compiled = path.join(tmp, 'mlm-compiled');
    await mlmTask.train({ values: withValues(MLM, { 'data.dev': dev, 'train.pad_multiple': COMPILE_PAD_MULTIPLE }), runDir: eager });
    await mlmTask.train({ values: withValues(MLM, { 'data.dev': dev, 'train.compile': true }), runDir: compiled });
    expectSameRun(eager, compiled);
    const last = records(compiled, 'train').at(-1)!;
    // (n, M) shapes: n ≤ 40 pads to 32 or 40, M to a multiple of 16; at least one each of the sum and update
    expect(last.compile_traces).toBeGreaterThanOrEqual(3);
    expect(last.compile_traces).toBeLessThan(STEPS * ACCUM);
    expect((last.compile_traces as number) + (last.compile_replays as number)).toBe(STEPS * ACCUM + STEPS * (ACCUM - 1) + STEPS);
  });

  it('a compiled run stopped and resumed computes what the uninterrupted compiled run does', async () => {
    const values = withValues(NER, { 'data.dev': '', 'train.compile': true });
    const whole = path.join(tmp, 'whole');
    await nerTask.train({ values, runDir: whole });
    const stopped = path.join(tmp, 'stopped');
    const first = await nerTask.train({ values, overrides: ['train.stop_at=3'], runDir: stopped });
    expect([first.step, first.stoppedEarly]).toEqual([3, true]);
    const resumed = await nerTask.train({ resume: stopped });
    expect(resumed.step).toBe(STEPS);
    const losses = (dir: string) => records(dir, 'train').map((r) => [r.step, r.loss, r.grad_norm]);
    expect(losses(stopped)).toEqual(losses(whole));
  });

  const refused: [string, () => unknown, RegExp][] = [
    ['fp16 (a dynamic loss scale)', () => nerTask.resolve({ values: NER, overrides: ['train.compile=true', 'precision=fp16'] }), /train\.compile=true cannot run with loss scaling \(precision=fp16, loss_scale=auto: a dynamic loss scale\)/],
    ['a constant loss scale', () => mlmTask.resolve({ values: MLM, overrides: ['train.compile=true', 'loss_scale=128'] }), /train\.compile=true cannot run with loss scaling \(precision=fp32, loss_scale=128: a constant loss scale\)/],
    ["the VAE's pool sampler", () => vaeTask.resolve({ overrides: ['train.compile=true', 'model.sampler=pool'] }), /train\.compile=true cannot use model\.sampler=pool/],
  ];
  for (const [what, resolve, message] of refused) {
    it(`refuses ${what} at config resolution`, () => {
      const err = expectCode(resolve, 'E_ARG');
      expect(err).toBeInstanceOf(RequestError);
      expect(err.message).toMatch(message);
    });
  }

  it('refuses before writing anything, and accepts bf16 without a scaler', async () => {
    const runDir = path.join(tmp, 'refused');
    await expect(nerTask.train({ values: NER, overrides: ['train.compile=true', 'precision=fp16'], runDir })).rejects.toThrow(RequestError);
    expect(existsSync(runDir)).toBe(false);
    expect(nerTask.resolve({ values: NER, overrides: ['train.compile=true', 'precision=bf16'] }).train.compile).toBe(true);
  });
});
