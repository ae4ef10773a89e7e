/**
 * Inference off the main thread: NerPredictor.predictAsync and WorkerModule.forwardAsync run in a
 * worker thread with its own copy of the model, so the event loop stays free (timers keep firing
 * during a long inference), concurrent requests are each answered with their own results, bit for
 * bit those of the synchronous call, errors come back as the KexueError of the same code, and
 * close() frees the worker's copy. The worker loads the code the caller runs: here (vitest) the
 * TypeScript sources, in a child process also under the CLI's in-process registration and under
 * tsx's CLI (the installed dist/ is test/packed-install.test.ts's).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as kx from '@kexue/core-cuda';
import { NerPredictor, WorkerModule, nerTask, type ConfigValues, type NerConfig } from '@kexue/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { expectCodeAsync } from '../../core-cuda/test/helpers.js';
import { FIXTURE_URL, TwoLayer } from './worker_module_fixture.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../../..');
const DEV = path.join(repoRoot, 'packages/models/demo/cluener/dev.jsonl');
const SMALL: ConfigValues<NerConfig> = {
  model: { hidden: 64, layers: 2, heads: 2, intermediate: 128 },
  head: { size: 16 },
  data: { max_length: 64 },
  train: { batch_size: 8, steps: 1 },
};

let tmp: string;
let run: string;
let predictor: NerPredictor;
const texts = readFileSync(DEV, 'utf8')
  .trim()
  .split('\n')
  .map((l) => (JSON.parse(l) as { text: string }).text);

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'kexue-async-'));
  run = path.join(tmp, 'run');
  await nerTask.train({ values: { ...SMALL, data: { ...SMALL.data, dev: '' } }, runDir: run });
  predictor = NerPredictor.load(run, 'last');
});
afterAll(async () => {
  predictor?.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

/** Runs fn while a 5 ms interval measures the event loop: how often it fired and its longest gap. */
async function timed<T>(fn: () => Promise<T> | T): Promise<{ value: T; ms: number; ticks: number; maxGap: number }> {
  let ticks = 0;
  let last = performance.now();
  let maxGap = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
    ticks++;
  }, 5);
  const t0 = performance.now();
  try {
    const value = await fn();
    const ms = performance.now() - t0;
    maxGap = Math.max(maxGap, performance.now() - last);
    return { value, ms, ticks, maxGap };
  } finally {
    clearInterval(timer);
  }
}

describe('NerPredictor.predictAsync', () => {
  it('answers concurrent requests each with its own texts, exactly as predict()', async () => {
    // four callers at once, with different texts, batch sizes and thresholds (this model is
    // trained for one step: its scores are nearly random, and a threshold of 2 or 3 gives a few
    // entities a text, as a trained one does, where 0 would give hundreds)
    const requests = [
      { texts: texts.slice(0, 40), batchSize: 32, threshold: 2 },
      { texts: texts.slice(40, 47), batchSize: 3, threshold: 1.5 },
      { texts: texts.slice(100, 160), batchSize: 16, threshold: 3 },
      { texts: [texts[7]!, '', texts[3]!], batchSize: 32, threshold: 2.5 },
    ];
    const answers = await Promise.all(requests.map((r) => predictor.predictAsync(r.texts, r.batchSize, r.threshold)));
    let entities = 0;
    requests.forEach((r, i) => {
      const expected = predictor.predict(r.texts, r.batchSize, r.threshold);
      expect(answers[i]).toHaveLength(r.texts.length);
      expect(answers[i]).toEqual(expected);
      entities += expected.flat().length;
    });
    expect(entities).toBeGreaterThan(20); // the comparison compared something
  });

  it('leaves the event loop free: timers keep firing during a long inference', async () => {
    await predictor.ready(); // the worker's start-up is not what is measured
    const many = [...texts, ...texts, ...texts];
    const sync = await timed(() => predictor.predict(many, 32, 3));
    const async = await timed(() => predictor.predictAsync(many, 32, 3));
    expect(async.value).toEqual(sync.value);
    console.info(
      `predict of ${many.length} texts (${sync.value.flat().length} entities): sync ${sync.ms.toFixed(0)} ms (timer fired ${sync.ticks}×, longest gap ${sync.maxGap.toFixed(0)} ms); ` +
        `predictAsync ${async.ms.toFixed(0)} ms (fired ${async.ticks}×, longest gap ${async.maxGap.toFixed(1)} ms)`,
    );
    // the synchronous call blocks the loop for all of its time; the worker leaves it free
    expect(sync.maxGap).toBeGreaterThan(sync.ms * 0.9);
    expect(async.ms).toBeGreaterThan(200); // long enough to tell
    expect(async.ticks).toBeGreaterThan(async.ms / 5 / 4);
    expect(async.maxGap).toBeLessThan(async.ms / 4);
  });

  it('rejects with the KexueError of the code the worker met, and goes on answering', async () => {
    const err = await expectCodeAsync(predictor.predictAsync(['ok', 42 as unknown as string]), 'E_ARG');
    expect(err).toBeInstanceOf(kx.ArgumentError);
    expect((err.cause as Error).message).toMatch(/^in the worker thread: text must be a string/);
    expect((err.cause as Error).stack).toMatch(/ner_worker\.ts/); // the worker's own stack
    expect(await predictor.predictAsync(texts.slice(0, 2))).toEqual(predictor.predict(texts.slice(0, 2)));
  });

  it('close() rejects what is not answered with E_DISPOSED and frees the worker copy; a later call starts anew', async () => {
    await predictor.close();
    const before = kx.memory().storages;
    await predictor.ready();
    const weights = Object.keys(predictor.model.stateDict()).length;
    expect(kx.memory().storages).toBeGreaterThanOrEqual(before + weights); // the worker's own copy
    const pending = [predictor.predictAsync(texts), predictor.predictAsync(texts), predictor.predictAsync(texts)];
    const settled = Promise.allSettled(pending);
    await predictor.close();
    for (const r of await settled) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toMatchObject({ code: 'E_DISPOSED', message: 'the NER predictor was closed before this call ran' });
    }
    expect(kx.memory().storages).toBe(before);
    expect(await predictor.predictAsync(texts.slice(5, 9))).toEqual(predictor.predict(texts.slice(5, 9)));
  });

  it('a disposed predictor refuses with E_DISPOSED', async () => {
    const p = NerPredictor.load(run, 'last');
    await p.predictAsync(['北京']);
    p.dispose();
    await expectCodeAsync(p.predictAsync(['北京']), 'E_DISPOSED');
  });
});

describe('the worker loads the code the caller runs', () => {
  const script = path.join(here, 'predict_async_script.mjs');
  /** A child's environment without vitest's (its NODE_OPTIONS, VITEST_* and the like). */
  const env = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^VITEST|^NODE_OPTIONS$/.test(k)));
  const check = (r: ReturnType<typeof spawnSync>) => {
    expect(String(r.stderr)).toBe('');
    expect(r.status).toBe(0);
    const out = JSON.parse(String(r.stdout)) as { same: boolean; entities: number; models: string };
    expect(out.same).toBe(true);
    expect(out.entities).toBeGreaterThan(0);
    expect(out.models).toMatch(/\/packages\/models\/src\/index\.ts$/);
  };

  it("with tsx and the 'source' condition registered in-process, as kexue's CLI does in a checkout", () => {
    check(spawnSync(process.execPath, [script, run, 'register'], { cwd: repoRoot, encoding: 'utf8', env: env(), timeout: 120_000 }));
  });

  it("under tsx's CLI (pnpm bench, pnpm demo): tsx is registered once in the worker, not twice", () => {
    const tsx = path.join(repoRoot, 'node_modules/.bin/tsx');
    check(spawnSync(tsx, ['--conditions=source', script, run, 'plain'], { cwd: repoRoot, encoding: 'utf8', env: env(), timeout: 120_000 }));
  });
});

describe('WorkerModule.forwardAsync', () => {
  it("runs a factory-made module with the caller's parameters: the caller's own forward, bit for bit", async () => {
    const m = new TwoLayer(24);
    // parameters the factory would not make: the worker must have the caller's, not its own
    m.setParameter('a.weight', kx.tensor(new Float32Array(24 * 48).map((_, i) => Math.sin(i)), [48, 24]));
    const w = new WorkerModule<{ y: kx.Tensor; parts: kx.Tensor[] }>(m, { url: FIXTURE_URL, name: 'makeTwoLayer', args: { n: 24 } });
    try {
      const xs = [0, 1, 2].map((s) => kx.tensor(new Float32Array(5 * 24).map((_, i) => Math.cos(i + s)), [5, 24]));
      const opts = [
        { scale: 1, half: false },
        { scale: 0.5, half: true },
        { scale: -2, half: false },
      ];
      const outs = await Promise.all(xs.map((x, i) => w.forwardAsync(x, opts[i])));
      outs.forEach((out, i) => {
        kx.tidy(() => {
          const ref = m.forward(xs[i]!, opts[i]!);
          expect(out.y.dtype).toBe(ref.y.dtype);
          expect(out.y.shape).toEqual(ref.y.shape);
          expect(out.y.dataSync()).toEqual(ref.y.dataSync());
          expect(out.parts.map((p) => p.dataSync())).toEqual(ref.parts.map((p) => p.dataSync()));
        });
        kx.dispose([out.y, ...out.parts]);
      });
      kx.dispose(xs);
      // an op error in the worker comes back with its code
      await expectCodeAsync(w.forwardAsync(kx.tensor(new Float32Array(10), [2, 5]), opts[0]), 'E_SHAPE');
    } finally {
      await w.close();
      m.dispose();
    }
  });

  it('refuses a factory that is not there (E_ARG) or that makes another architecture (E_FORMAT)', async () => {
    const m = new TwoLayer(8);
    const x = kx.tensor(new Float32Array(8), [1, 8]);
    try {
      const missing = new WorkerModule(m, { url: FIXTURE_URL, name: 'noSuchFactory' });
      await expectCodeAsync(missing.forwardAsync(x), 'E_ARG');
      const other = new WorkerModule(m, { url: FIXTURE_URL, name: 'makeTwoLayer', args: { n: 9 } });
      await expectCodeAsync(other.forwardAsync(x), 'E_FORMAT');
    } finally {
      kx.dispose(x);
      m.dispose();
    }
  });
});
