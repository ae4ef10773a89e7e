/**
 * kx.dist.allReduce timed in an MPI job (bench/src/dist.ts runs it under mpirun, beside
 * bench/allreduce.c): for each size, one float32 tensor (reduced in its own storage, as the C program
 * does) and the same bytes as 64 tensors (packed into one bucket and back). After a warm-up, ROUNDS
 * calls, each after a barrier. Rank 0 prints one JSON line per size and layout: the median
 * ("seconds") and the fastest ("best").
 * Usage: mpirun -np N tsx --conditions=source dist_allreduce.ts ROUNDS BYTES...
 */
import * as kx from '@kexue/core-cuda';

import { median } from './stats.js';

const [roundsArg, ...sizes] = process.argv.slice(2);
const rounds = Number(roundsArg);
const world = kx.dist.init();


for (const text of sizes) {
  const bytes = Number(text);
  const count = bytes / 4;
  for (const pieces of [1, 64]) {
    const tensors = Array.from({ length: pieces }, () => kx.tensor(Float32Array.from({ length: count / pieces }, (_, i) => i % 7), [count / pieces]));
    const options = { bucketBytes: bytes };
    kx.dist.allReduce(tensors, 'sum', options);
    const times: number[] = [];
    for (let r = 0; r < rounds; r++) {
      kx.dist.barrier();
      const t0 = performance.now();
      kx.dist.allReduce(tensors, 'sum', options);
      times.push((performance.now() - t0) / 1000);
    }
    if (world.rank === 0) console.log(JSON.stringify({ bytes, pieces, seconds: median(times), best: Math.min(...times) }));
    kx.dispose(tensors);
  }
}
