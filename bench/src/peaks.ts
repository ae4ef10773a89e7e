/**
 * The machine's measured peaks: OpenBLAS sgemm GFLOP/s on a 2048² square called directly from a
 * tiny C program (bench/peaks.c, compiled on first use into node_modules/.cache/kexue-bench), and
 * the memory-copy GB/s (read + write) of the same thread count. Achieved rates are reported as
 * fractions of these, so the distance to the limit shows.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Peaks {
  /** OpenBLAS sgemm on [N, N]·[N, N], median of 6. */
  sgemmGflops: number;
  sgemmN: number;
  /** memcpy of 256 MiB split over the threads: 2·bytes / time. */
  copyGBs: number;
  threads: number;
  /** OPENBLAS_* variables in effect (they change OpenBLAS's kernels). */
  openblasEnv: Record<string, string>;
}

const SRC = fileURLToPath(new URL('../peaks.c', import.meta.url));
/** node_modules/.cache/kexue-bench of the repository: what the bench builds or makes once. */
export const BENCH_CACHE = fileURLToPath(new URL('../../node_modules/.cache/kexue-bench', import.meta.url));

/** Builds (once) and returns the peaks program's path; throws with the compiler's message. */
export function peaksProgram(): string {
  const exe = path.join(BENCH_CACHE, 'peaks');
  if (existsSync(exe) && statSync(exe).mtimeMs >= statSync(SRC).mtimeMs) return exe;
  mkdirSync(BENCH_CACHE, { recursive: true });
  const cc = process.env.CC ?? 'cc';
  execFileSync(cc, ['-O2', '-o', exe, SRC, '-lopenblas', '-lpthread'], { stdio: ['ignore', 'ignore', 'pipe'] });
  return exe;
}

/** OPENBLAS_* of an environment. */
export function openblasEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith('OPENBLAS_') && v !== undefined)) as Record<string, string>;
}

/** Measures the peaks with `threads` threads under `env` (default: this process's). */
export function measurePeaks(threads: number, env: NodeJS.ProcessEnv = process.env): Peaks {
  const out = execFileSync(peaksProgram(), [String(threads), '2048'], { env, encoding: 'utf8' });
  const j = JSON.parse(out.trim()) as { sgemmGflops: number; sgemmN: number; copyGBs: number; threads: number };
  return { sgemmGflops: j.sgemmGflops, sgemmN: j.sgemmN, copyGBs: j.copyGBs, threads: j.threads, openblasEnv: openblasEnv(env) };
}

/** This environment without the OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE overrides. */
export function envWithoutOpenblasOverrides(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const e = { ...env };
  delete e.OPENBLAS_CORETYPE;
  delete e.OPENBLAS_L2_SIZE;
  return e;
}
