/**
 * The benchmark driver: for each case, kexue (in this process) and PyTorch (a child process) are set
 * up, warmed up, then timed in alternating blocks (kexue first on even rounds, PyTorch first on odd
 * ones) so that load from other processes falls on both; medians of the per-iteration times and
 * their ratio kexue/PyTorch are reported.
 */
import os from 'node:os';

import * as kx from '@kexue/core-cuda';

import { CASES, type BenchCase } from './cases.js';
import { envWithoutOpenblasOverrides, measurePeaks, openblasEnv, type Peaks } from './peaks.js';
import { median, timeIterations } from './stats.js';
import { TorchSide } from './torch.js';

export interface BenchOptions {
  /** Case names (default: all). Unknown names are an error. */
  cases?: string[];
  /** Threads for kexue and PyTorch (default: KEXUE_NUM_THREADS or all cores). */
  threads?: number;
  /** Alternating rounds per case (default 5; end-to-end cases 3). */
  rounds?: number;
  /** Aim of one timed block, ms (default 300): sets the iterations per block. */
  blockMs?: number;
  /** Run PyTorch beside kexue (default true). */
  torch?: boolean;
  /** Measure the machine's peaks (default true). */
  peaks?: boolean;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export interface CaseResult {
  case: string;
  what: string;
  kexue_ms: number | null;
  torch_ms: number | null;
  /** kexue_ms / torch_ms: below 1 kexue is faster. */
  ratio: number | null;
  kexue_samples: number[];
  torch_samples: number[];
  flops?: number;
  bytes?: number;
  kexue_gflops?: number;
  torch_gflops?: number;
  /** kexue GFLOP/s over the measured OpenBLAS sgemm peak. */
  kexue_of_sgemm_peak?: number;
  kexue_gbs?: number;
  torch_gbs?: number;
  /** kexue GB/s over the measured memory-copy bandwidth. */
  kexue_of_copy_peak?: number;
  error?: string;
}

export interface BenchReport {
  date: string;
  threads: number;
  node: string;
  torch: string | null;
  /** Why PyTorch did not run, when it did not. */
  torchError?: string;
  cpu: string;
  blas: string;
  openblasEnv: Record<string, string>;
  peaks: Peaks | null;
  /** The same peaks with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed. */
  peaksWithoutOpenblasOverrides: Peaks | null;
  peaksError?: string;
  results: CaseResult[];
}

function defaultThreads(): number {
  const env = Number(process.env.KEXUE_NUM_THREADS);
  return Number.isInteger(env) && env > 0 ? env : os.availableParallelism();
}

function selectCases(names: string[] | undefined): BenchCase[] {
  if (!names || names.length === 0) return CASES;
  return names.map((n) => {
    const c = CASES.find((x) => x.name === n);
    if (!c) throw new kx.ArgumentError(`bench: unknown case '${n}'; cases: ${CASES.map((x) => x.name).join(', ')}`);
    return c;
  });
}

function rates(c: BenchCase, r: CaseResult, peaks: Peaks | null): void {
  const per = (ms: number | null, amount: number, unit: number) => (ms === null ? undefined : amount / (ms * 1e-3) / unit);
  if (c.flops) {
    r.flops = c.flops;
    r.kexue_gflops = per(r.kexue_ms, c.flops, 1e9);
    r.torch_gflops = per(r.torch_ms, c.flops, 1e9);
    if (peaks && r.kexue_gflops !== undefined) r.kexue_of_sgemm_peak = r.kexue_gflops / peaks.sgemmGflops;
  }
  if (c.bytes) {
    r.bytes = c.bytes;
    r.kexue_gbs = per(r.kexue_ms, c.bytes, 1e9);
    r.torch_gbs = per(r.torch_ms, c.bytes, 1e9);
    if (peaks && r.kexue_gbs !== undefined) r.kexue_of_copy_peak = r.kexue_gbs / peaks.copyGBs;
  }
}

async function runCase(c: BenchCase, torch: TorchSide | null, o: Required<Pick<BenchOptions, 'blockMs'>> & { rounds: number }): Promise<CaseResult> {
  const r: CaseResult = { case: c.name, what: c.what, kexue_ms: null, torch_ms: null, ratio: null, kexue_samples: [], torch_samples: [] };
  const errors: string[] = [];
  const inst = c.setup();
  let torchOk = false;
  if (torch) {
    try {
      await torch.setup(c.name);
      torchOk = true;
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  try {
    const rounds = c.heavy ? Math.min(o.rounds, 3) : o.rounds;
    // warm-up, and the iterations per block from the warm-up's last time
    const kw = timeIterations(inst.run, c.heavy ? 1 : 2);
    const tw = torchOk ? await torch!.run(c.heavy ? 1 : 2) : [];
    const itersFor = (ms: number) => (c.heavy ? 1 : Math.max(1, Math.min(50, Math.round(o.blockMs / Math.max(ms, 1e-3)))));
    const kIters = itersFor(kw[kw.length - 1]!);
    const tIters = torchOk ? itersFor(tw[tw.length - 1]!) : 0;
    for (let round = 0; round < rounds; round++) {
      const kexueBlock = () => r.kexue_samples.push(...timeIterations(inst.run, kIters));
      const torchBlock = async () => {
        if (torchOk) r.torch_samples.push(...(await torch!.run(tIters)));
      };
      if (round % 2 === 0) {
        kexueBlock();
        await torchBlock();
      } else {
        await torchBlock();
        kexueBlock();
      }
    }
  } catch (e) {
    errors.push((e as Error).message);
  } finally {
    inst.dispose();
  }
  r.kexue_ms = r.kexue_samples.length ? median(r.kexue_samples) : null;
  r.torch_ms = r.torch_samples.length ? median(r.torch_samples) : null;
  r.ratio = r.kexue_ms !== null && r.torch_ms !== null ? r.kexue_ms / r.torch_ms : null;
  if (errors.length) r.error = errors.join('; ');
  return r;
}

/** Runs the benchmark; PyTorch or the peaks missing are reported in the result, never faked. */
export async function runBench(options: BenchOptions = {}): Promise<BenchReport> {
  const cases = selectCases(options.cases);
  const threads = options.threads ?? defaultThreads();
  const log = options.log ?? (() => undefined);
  kx.setNumThreads(threads);
  const info = kx.buildInfo();
  const report: BenchReport = {
    date: new Date().toISOString(),
    threads,
    node: process.version,
    torch: null,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    blas: info.blas,
    openblasEnv: openblasEnv(),
    peaks: null,
    peaksWithoutOpenblasOverrides: null,
    results: [],
  };
  if (options.peaks !== false) {
    try {
      report.peaks = measurePeaks(threads);
      report.peaksWithoutOpenblasOverrides = measurePeaks(threads, envWithoutOpenblasOverrides());
      log(`peaks: sgemm ${report.peaks.sgemmGflops.toFixed(1)} GFLOP/s (${report.peaksWithoutOpenblasOverrides.sgemmGflops.toFixed(1)} without OPENBLAS_CORETYPE/L2_SIZE), copy ${report.peaks.copyGBs.toFixed(1)} GB/s`);
    } catch (e) {
      report.peaksError = (e as Error).message;
      log(`peaks not measured: ${report.peaksError}`);
    }
  }
  let torch: TorchSide | null = null;
  if (options.torch !== false) {
    try {
      torch = await TorchSide.open(threads);
      report.torch = torch.version;
    } catch (e) {
      report.torchError = (e as Error).message;
      log(`PyTorch not available: ${report.torchError}`);
    }
  }
  try {
    for (const c of cases) {
      const r = await runCase(c, torch, { blockMs: options.blockMs ?? 300, rounds: options.rounds ?? 5 });
      rates(c, r, report.peaks);
      report.results.push(r);
      const f = (x: number | null) => (x === null ? '—' : x.toFixed(2));
      log(`${c.name}: kexue ${f(r.kexue_ms)} ms, PyTorch ${f(r.torch_ms)} ms, ratio ${f(r.ratio)}${r.error ? ` (${r.error})` : ''}`);
    }
  } finally {
    torch?.close();
  }
  return report;
}
