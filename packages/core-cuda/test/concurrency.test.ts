/**
 * Several JS threads calling kexue at once. The addon is loaded once per thread, but its state is
 * the process's: the handle table (a mutex), the allocators (a mutex each), the registry (read-only
 * after load), the CPU thread pool (one parallel region at a time: a caller that finds it busy
 * waits) and oneDNN's primitives (each run on one thread with the caller's scratchpad, from kexue's
 * own cache). Two worker threads and the main thread run the same ops at the same time, over and over,
 * and every output must have the bits the main thread computed alone beforehand: a product that
 * is split over the pool, small products inside the pool's chunks, row kernels, reductions, attention, a
 * cast and a gradient. A worker loading the addon while the main thread computes must not disturb
 * the pool either (the addon's init sets the thread count once per process).
 */
import { Worker } from 'node:worker_threads';

import { describe, expect, it } from 'vitest';

import { CASE_NAMES, liveStorages, runCases, runRounds } from './concurrency_cases.js';

const ROUNDS = 6;

interface Result {
  digests: Record<string, string>[];
  start: number;
  end: number;
}

function startWorker(rounds: number): { worker: Worker; ready: Promise<void>; result: Promise<Result> } {
  const worker = new Worker(new URL('./concurrency_worker.mjs', import.meta.url), { workerData: { rounds } });
  let readyResolve!: () => void;
  const ready = new Promise<void>((r) => (readyResolve = r));
  const result = new Promise<Result>((resolve, reject) => {
    worker.on('message', (m: { ready?: true } & Result) => (m.ready ? readyResolve() : resolve(m)));
    worker.on('error', reject);
    worker.on('exit', (code) => reject(new Error(`worker exited with code ${code} before answering`)));
  });
  return { worker, ready, result };
}

describe('concurrent callers', () => {
  // a pool that lets two regions run at once hangs here (they overwrite its one job): a timeout, not a wrong digest
  it('two worker threads and the main thread running ops at once get the bits of a sequential run', { timeout: 60_000 }, async () => {
    const reference = runCases();
    expect(Object.keys(reference)).toEqual(CASE_NAMES);
    const baseline = liveStorages();

    const workers = [startWorker(ROUNDS), startWorker(ROUNDS)];
    // the main thread computes while the workers load the addon
    while (!(await Promise.race([Promise.all(workers.map((w) => w.ready)).then(() => true), new Promise((r) => setTimeout(() => r(false), 0))]))) {
      expect(runCases()).toEqual(reference);
    }
    for (const w of workers) w.worker.postMessage('go');
    const main = runRounds(ROUNDS);
    const results = await Promise.all(workers.map((w) => w.result));
    for (const r of [main, ...results]) {
      expect(r.digests).toHaveLength(ROUNDS);
      for (const d of r.digests) expect(d).toEqual(reference);
    }
    // they did overlap: each worker's rounds began before the main thread's ended, and ended after they began
    for (const r of results) {
      expect(r.start).toBeLessThan(main.end);
      expect(r.end).toBeGreaterThan(main.start);
    }
    await Promise.all(workers.map((w) => w.worker.terminate()));
    // every thread freed what it made (the counts are the process's)
    expect(liveStorages()).toBe(baseline);
  });
});
