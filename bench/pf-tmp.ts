import { readFileSync } from 'node:fs';
import { findCase } from '@kexue/bench';
import * as kx from '@kexue/core-cuda';
const minflt = () => Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[7]);
const c = findCase(process.argv[2] ?? 'bert-small-train-step')!;
const inst = await c.setup();
for (let i = 0; i < 5; i++) {
  const f0 = minflt(); const t0 = performance.now();
  inst.run();
  console.log(`iter ${i}: ${(performance.now() - t0).toFixed(0)} ms, minor faults ${minflt() - f0}, host cache ${(kx.memory().hostCachedBytes / 2 ** 20).toFixed(0)} MiB, bytes ${(kx.memory().bytes / 2 ** 20).toFixed(0)} MiB`);
}
