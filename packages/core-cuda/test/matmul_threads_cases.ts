// Run by matmul_packed.test.ts in a child process (DNNL_MAX_CPU_ISA is read once per process):
// each product at 1, 2 and 3 threads: plain (b stored [n, k], b stored [k, n], and a transposed too)
// and with a packed weight. Prints, as its last line, a JSON list of the cases whose bits differ
// between thread counts (empty when none do).
import * as kx from '../src/index.js';
import { randomTensor } from './helpers.js';

const shapes: Array<[number, number, number]> = [
  [32, 256, 256],
  [7, 300, 2113],
  [1, 64, 4096],
  [300, 96, 40],
  [600, 64, 320],
  [40, 100, 1000],
  [48, 768, 768],
  [128, 64, 1024],
];

const differing: string[] = [];
const before = kx.buildInfo().threads;
try {
  for (const [m, k, n] of shapes) {
    kx.tidy(() => {
      const a = randomTensor([m, k], 11);
      const w = randomTensor([n, k], 12, 0.1);
      const bits = (t: kx.Tensor) => {
        const f = t.toFloat32Array();
        return Buffer.from(f.buffer, f.byteOffset, f.byteLength).toString('base64');
      };
      // b not stored transposed, and a transposed: without AVX-512, parts of 64 rows and more run on OpenBLAS
      const wKn = randomTensor([k, n], 13, 0.1);
      const aKm = randomTensor([k, m], 14);
      const runs: Record<'plain' | 'packed' | 'plain NN' | 'plain TN', string[]> = { plain: [], packed: [], 'plain NN': [], 'plain TN': [] };
      for (const threads of [1, 2, 3]) {
        kx.setNumThreads(threads);
        runs.plain.push(bits(kx.matmul(a, w, { transB: true })));
        runs.packed.push(bits(kx.matmulPacked(a, kx.packWeight(w, { transB: true }))));
        runs['plain NN'].push(bits(kx.matmul(a, wKn)));
        runs['plain TN'].push(bits(kx.matmul(aKm, wKn, { transA: true })));
      }
      for (const [kind, all] of Object.entries(runs)) {
        if (all.some((b) => b !== all[0])) differing.push(`${kind} [${m}, ${k}]·[${k}, ${n}]`);
      }
    });
  }
} finally {
  kx.setNumThreads(before);
}
console.log(JSON.stringify(differing));
