import * as kx from '@kexue/core-cuda';
const shapes: [number, number, number][] = [[2048, 256, 21128], [2048, 256, 1024], [2048, 1024, 256], [1024, 1024, 1024]];
for (const [m, k, n] of shapes) {
  const x = kx.tensor(Float32Array.from({ length: m * k }, (_, i) => Math.sin(i)), [m, k]);
  const w = kx.tensor(Float32Array.from({ length: n * k }, (_, i) => Math.cos(i)), [n, k]);
  const b = kx.tensor(Float32Array.from({ length: n }, (_, i) => i / n), [n]);
  const fs = [() => kx.matmul(x, w, { transB: true, bias: b }), () => kx.add(kx.matmul(x, w, { transB: true }), b), () => kx.matmul(x, w, { transB: true })];
  for (const f of fs) for (let i = 0; i < 2; i++) kx.tidy(f);
  const ts: number[][] = [[], [], []];
  for (let i = 0; i < 15; i++) for (const j of i % 2 ? [2, 1, 0] : [0, 1, 2]) { const t0 = performance.now(); kx.tidy(fs[j]!); ts[j]!.push(performance.now() - t0); }
  const med = (a: number[]) => a.sort((p, q) => p - q)[7]!;
  console.log(`[${m},${k}]·[${n},${k}]ᵀ: +bias epilogue ${med(ts[0]!).toFixed(2)} ms, matmul+add ${med(ts[1]!).toFixed(2)} ms, matmul ${med(ts[2]!).toFixed(2)} ms (${(2 * m * n * k / med(ts[2]!) / 1e6).toFixed(0)} GFLOP/s)`);
}
