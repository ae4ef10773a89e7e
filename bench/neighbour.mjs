// The CPU-bound neighbour of the idle-neighbour case (bench/src/neighbour.ts): a JSON-lines server
// whose worker threads (argv[2], default 1) spin through fixed units of arithmetic. Request
// {"ms": D}: every worker works for D ms; reply {"units": U, "ms": wall, "workers": W}, U counted
// over all workers. Fewer units in the same time means a neighbour took CPU from it.
import { createInterface } from 'node:readline';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

/** One unit of work: a dependent chain of float operations (about 0.1 ms). */
function unit(seed) {
  let x = seed;
  for (let i = 0; i < 50_000; i++) x = x * 1.0000001 + 1e-9;
  return x;
}

if (isMainThread) {
  const workers = Math.max(1, Number(process.argv[2] ?? 1));
  const pool = Array.from({ length: workers }, () => new Worker(new URL(import.meta.url), { workerData: null }));
  const ask = (w, ms) => new Promise((resolve) => { w.once('message', resolve); w.postMessage(ms); });
  for await (const line of createInterface({ input: process.stdin })) {
    const { ms } = JSON.parse(line);
    const t0 = performance.now();
    const counts = await Promise.all(pool.map((w) => ask(w, ms)));
    process.stdout.write(`${JSON.stringify({ units: counts.reduce((a, b) => a + b, 0), ms: performance.now() - t0, workers })}\n`);
  }
  await Promise.all(pool.map((w) => w.terminate()));
} else {
  let sink = workerData ?? 0;
  parentPort.on('message', (ms) => {
    const end = performance.now() + ms;
    let n = 0;
    while (performance.now() < end) {
      sink += unit(n) * 1e-30;
      n++;
    }
    // sink is read so that the loop cannot be optimised away; it never is Infinity
    parentPort.postMessage(n + (sink === Infinity ? 1 : 0));
  });
}
