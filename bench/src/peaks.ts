/**
 * The machine's measured peaks, from a tiny C program (bench/peaks.c, compiled on first use into
 * node_modules/.cache/kexue-bench) calling each engine directly on a 2048² square: oneDNN's f32
 * matmul (kexue's matrix products) and OpenBLAS sgemm (PyTorch's) in GFLOP/s, and the memory-copy
 * GB/s (read + write), all with the same thread count. kexue's achieved rates are reported as
 * fractions of oneDNN's and the copy's, so the distance to the limit shows.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Peaks {
  /** OpenBLAS sgemm on [N, N]·[N, N], median of 7 after a warm-up. */
  sgemmGflops: number;
  sgemmN: number;
  /** oneDNN's f32 matmul on the same square, plain row-major operands, median of 7 after a warm-up. */
  onednnGflops: number;
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
  execFileSync(cc, ['-O2', '-o', exe, SRC, '-ldnnl', '-lopenblas', '-lgomp', '-lpthread'], { stdio: ['ignore', 'ignore', 'pipe'] });
  return exe;
}

/** OPENBLAS_* of an environment. */
export function openblasEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith('OPENBLAS_') && v !== undefined)) as Record<string, string>;
}

/** Measures the peaks with `threads` threads under `env` (default: this process's). */
export function measurePeaks(threads: number, env: NodeJS.ProcessEnv = process.env): Peaks {
  const out = execFileSync(peaksProgram(), [String(threads), '2048'], { env, encoding: 'utf8' });
  const j = JSON.parse(out.trim()) as Omit<Peaks, 'openblasEnv'>;
  return { sgemmGflops: j.sgemmGflops, sgemmN: j.sgemmN, onednnGflops: j.onednnGflops, copyGBs: j.copyGBs, threads: j.threads, openblasEnv: openblasEnv(env) };
}

/** The variables that override OpenBLAS's own choice of kernels for the CPU. */
const OPENBLAS_OVERRIDES = ['OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'] as const;

/** Whether an environment sets OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE. */
export function hasOpenblasOverrides(env: NodeJS.ProcessEnv = process.env): boolean {
  return OPENBLAS_OVERRIDES.some((k) => env[k] !== undefined);
}

/** This environment without the OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE overrides. */
export function envWithoutOpenblasOverrides(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const e = { ...env };
  for (const k of OPENBLAS_OVERRIDES) delete e[k];
  return e;
}
