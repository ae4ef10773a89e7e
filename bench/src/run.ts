/**
 * The benchmark driver: for each case, kexue (in this process), ONNX Runtime (in this process, for
 * the BERT inference cases) and PyTorch (a child process per setting: the OpenMP wait policy and
 * OpenBLAS's kernels, torch.ts) are set up, warmed up, then timed in alternating blocks, the order
 * rotating every round so that each side goes first as often. Every block waits for a quiet
 * machine and is checked against /proc for CPU other processes took (blocks.ts); medians of the
 * per-iteration times, the fastest PyTorch setting, the ratios and each case's load are reported.
 */
import os from 'node:os';

import * as kx from '@kexue/core-cuda';

import { checkedBlock, defaultBlockPolicy, summarizeLoad, type BlockPolicy, type CheckedBlock } from './blocks.js';
import { CASES, isMeasured, type BenchCase, type CaseInstance, type MeasureContext, type MeasuredCase, type TimedCase } from './cases.js';
import { machineInfo } from './machine.js';
import { envWithoutOpenblasOverrides, measurePeaks, openblasEnv, type Peaks } from './peaks.js';
import { torchFields, type BenchReport, type CaseResult, type SideKey } from './result.js';
import { median, timeAsyncIterations, timeIterations } from './stats.js';
import { torchSettings, TorchSide, type TorchSettingName } from './torch.js';

export type { BenchReport, CaseResult } from './result.js';

export interface BenchOptions {
  /** Case names (default: all). Unknown names are an error. */
  cases?: string[];
  /** Threads for kexue, ONNX Runtime and PyTorch (default: KEXUE_NUM_THREADS or all cores). */
  threads?: number;
  /** Alternating rounds per case (default 5; end-to-end cases 3). */
  rounds?: number;
  /** Aim of one timed block, ms (default 300): sets the iterations per block. */
  blockMs?: number;
  /** Run PyTorch beside kexue (default true). */
  torch?: boolean;
  /** Measure the machine's peaks (default true). */
  peaks?: boolean;
  /** How blocks are checked for load (default: defaultBlockPolicy()). */
  policy?: BlockPolicy;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

function defaultThreads(): number {
  const env = Number(process.env.KEXUE_NUM_THREADS);
  return Number.isInteger(env) && env > 0 ? env : os.availableParallelism();
}

/** The cases named: each name is a case's, or the prefix of a family of them (`e1` selects `e1-*`). */
function selectCases(names: string[] | undefined): BenchCase[] {
  if (!names || names.length === 0) return CASES;
  return names.flatMap((n) => {
    const c = CASES.find((x) => x.name === n);
    if (c) return [c];
    const family = CASES.filter((x) => x.name.startsWith(`${n}-`));
    if (family.length === 0) throw new kx.ArgumentError(`bench: unknown case '${n}'; cases: ${CASES.map((x) => x.name).join(', ')}`);
    return family;
  });
}

function rates(c: BenchCase, r: CaseResult, peaks: Peaks | null): void {
  const per = (ms: number | null | undefined, amount: number, unit: number) => (ms === null || ms === undefined ? undefined : amount / (ms * 1e-3) / unit);
  if (c.flops) {
    r.flops = c.flops;
    r.kexue_gflops = per(r.kexue_ms, c.flops, 1e9);
    r.torch_gflops = per(r.torch_ms, c.flops, 1e9);
    if (r.ort_ms !== undefined) r.ort_gflops = per(r.ort_ms, c.flops, 1e9);
    if (peaks && r.kexue_gflops !== undefined) r.kexue_of_onednn_peak = r.kexue_gflops / peaks.onednnGflops;
  }
  if (c.bytes) {
    r.bytes = c.bytes;
    r.kexue_gbs = per(r.kexue_ms, c.bytes, 1e9);
    r.torch_gbs = per(r.torch_ms, c.bytes, 1e9);
    if (peaks && r.kexue_gbs !== undefined) r.kexue_of_copy_peak = r.kexue_gbs / peaks.copyGBs;
  }
}

/** One side of a timed case: whose CPU is its own, and a block of `iters` timed iterations. */
interface TimedSide {
  key: SideKey;
  pids: number[];
  run(iters: number): Promise<number[]>;
}

/** The largest number of iterations in one block. */
const MAX_BLOCK_ITERS = 200;

/**
 * The sides of a set-up case; PyTorch's that fail their setup are left out with the reason in
 * `errors`. PyTorch's agreement with kexue, where its setup checks it, goes into `r`.
 */
async function timedSides(c: TimedCase, inst: CaseInstance, torch: TorchSide[], r: CaseResult, errors: string[]): Promise<TimedSide[]> {
  const sides: TimedSide[] = [{ key: 'kexue', pids: [process.pid], run: async (n) => timeIterations(inst.run, n) }];
  if (inst.ort) sides.push({ key: 'ort', pids: [process.pid], run: (n) => timeAsyncIterations(inst.ort!, n) });
  if (inst.ortError) errors.push(inst.ortError);
  for (const t of torch) {
    try {
      const diff = await t.setup(c.name, inst.torchArgs);
      if (diff !== undefined) r.max_abs_diff_vs_torch = Math.max(r.max_abs_diff_vs_torch ?? 0, diff);
      sides.push({ key: `torch_${t.setting.name}`, pids: [t.pid], run: (n) => t.run(n) });
    } catch (e) {
      errors.push(`${(e as Error).message} (PyTorch setting ${t.setting.name})`);
    }
  }
  return sides;
}

async function runTimedCase(c: TimedCase, torch: TorchSide[], o: { blockMs: number; rounds: number; threads: number; policy: BlockPolicy }): Promise<CaseResult> {
  const r: CaseResult = { case: c.name, what: c.what, kexue_ms: null, torch_ms: null, ratio: null, kexue_samples: [], load: null, loaded: false };
  const errors: string[] = [];
  const samples = new Map<SideKey, number[]>();
  const kept: CheckedBlock<number[]>[] = [];
  let inst: CaseInstance | null = null;
  try {
    inst = await c.setup({ threads: o.threads });
    if (inst.maxAbsDiffVsOrt !== undefined) r.max_abs_diff_vs_ort = inst.maxAbsDiffVsOrt;
    if (inst.counts) r.counts = inst.counts;
    const sides = await timedSides(c, inst, torch, r, errors);
    const allPids = [...new Set(sides.flatMap((s) => s.pids))];
    const rounds = c.heavy ? Math.min(o.rounds, 3) : o.rounds;
    // warm-up, and the iterations per block from the warm-up's last time
    const iters = new Map<SideKey, number>();
    for (const side of sides) {
      const w = await side.run(c.heavy ? 1 : 2);
      iters.set(side.key, c.heavy ? 1 : Math.max(1, Math.min(MAX_BLOCK_ITERS, Math.round(o.blockMs / Math.max(w[w.length - 1]!, 1e-3)))));
      samples.set(side.key, []);
    }
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < sides.length; i++) {
        const side = sides[(i + round) % sides.length]!;
        const siblings = allPids.filter((p) => !side.pids.includes(p));
        const block = await checkedBlock(() => side.run(iters.get(side.key)!), side.pids, siblings, o.policy);
        kept.push(block);
        samples.get(side.key)!.push(...block.value);
      }
    }
  } catch (e) {
    errors.push((e as Error).message);
  } finally {
    await inst?.dispose();
  }
  fillTimes(r, samples);
  r.load = summarizeLoad(kept);
  r.loaded = kept.some((b) => b.loaded);
  if (errors.length) r.error = errors.join('; ');
  return r;
}

/** Medians, the fastest PyTorch setting and the ratios from each side's samples. */
export function fillTimes(r: CaseResult, samples: ReadonlyMap<SideKey, number[]>): void {
  const med = (k: SideKey) => {
    const xs = samples.get(k);
    return xs && xs.length ? median(xs) : null;
  };
  r.kexue_samples = samples.get('kexue') ?? [];
  r.kexue_ms = med('kexue');
  const torchMs = new Map<TorchSettingName, number | null>();
  for (const [key, xs] of samples) {
    if (key === 'kexue' || key === 'ort') continue;
    const setting = key.slice('torch_'.length) as TorchSettingName;
    r[`torch_${setting}_samples`] = xs;
    torchMs.set(setting, med(key));
  }
  Object.assign(r, torchFields(torchMs));
  r.ratio = r.kexue_ms !== null && r.torch_ms !== null ? r.kexue_ms / r.torch_ms : null;
  if (samples.has('ort')) {
    r.ort_samples = samples.get('ort')!;
    r.ort_ms = med('ort');
    r.ratio_ort = r.kexue_ms !== null && r.ort_ms !== null ? r.kexue_ms / r.ort_ms : null;
  }
}

async function runMeasuredCase(c: MeasuredCase, ctx: MeasureContext): Promise<CaseResult> {
  try {
    return { case: c.name, what: c.what, ...(await c.measure(ctx)) };
  } catch (e) {
    return { case: c.name, what: c.what, kexue_ms: null, torch_ms: null, ratio: null, kexue_samples: [], load: null, loaded: false, error: (e as Error).message };
  }
}

/** The version of onnxruntime-node, or why it cannot be loaded. */
async function ortVersion(): Promise<{ ort: string | null; ortError?: string }> {
  try {
    const ort = await import('onnxruntime-node');
    return { ort: ort.env.versions.node ?? ort.env.versions.common };
  } catch (e) {
    return { ort: null, ortError: (e as Error).message };
  }
}

/** Runs the benchmark; PyTorch, ONNX Runtime or the peaks missing are reported in the result, never faked. */
export async function runBench(options: BenchOptions = {}): Promise<BenchReport> {
  const cases = selectCases(options.cases);
  const threads = options.threads ?? defaultThreads();
  const log = options.log ?? (() => undefined);
  const policy = options.policy ?? defaultBlockPolicy();
  kx.setNumThreads(threads);
  const info = kx.buildInfo();
  const machine = await machineInfo(info);
  log(`machine: ${machine.isa}, addon SIMD ${machine.addonSimd}, load average ${machine.loadavgStart.map((x) => x.toFixed(2)).join(' ')}, busy cores at start ${machine.busyCoresAtStart?.toFixed(2) ?? '?'}`);
  const report: BenchReport = {
    date: new Date().toISOString(),
    threads,
    node: process.version,
    torch: null,
    ...(await ortVersion()),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    machine,
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
      log(
        `peaks: oneDNN matmul ${report.peaks.onednnGflops.toFixed(1)} GFLOP/s, OpenBLAS sgemm ${report.peaks.sgemmGflops.toFixed(1)} GFLOP/s ` +
          `(${report.peaksWithoutOpenblasOverrides.sgemmGflops.toFixed(1)} without OPENBLAS_CORETYPE/L2_SIZE), copy ${report.peaks.copyGBs.toFixed(1)} GB/s`,
      );
    } catch (e) {
      report.peaksError = (e as Error).message;
      log(`peaks not measured: ${report.peaksError}`);
    }
  }
  const torch: TorchSide[] = [];
  if (options.torch !== false) {
    try {
      for (const setting of torchSettings()) torch.push(await TorchSide.open(threads, setting));
      report.torch = torch[0]!.version;
      report.torchSettings = torch.map((t) => t.setting.name);
    } catch (e) {
      torch.splice(0).forEach((t) => t.close());
      report.torchError = (e as Error).message;
      log(`PyTorch not available: ${report.torchError}`);
    }
  }
  const blockMs = options.blockMs ?? 300;
  const rounds = options.rounds ?? 5;
  try {
    for (const c of cases) {
      const r = isMeasured(c)
        ? await runMeasuredCase(c, { threads, cpus: policy.cpus, rounds, policy, torch, log })
        : await runTimedCase(c, torch, { blockMs, rounds, threads, policy });
      rates(c, r, report.peaks);
      report.results.push(r);
      const f = (x: number | null | undefined) => (x === null || x === undefined ? '—' : x.toFixed(2));
      const load = r.load ? `, foreign load ≤ ${r.load.foreign_cores_max.toFixed(2)} cores${r.loaded ? ' (LOADED)' : ''}` : '';
      log(`${c.name}: kexue ${f(r.kexue_ms)} ms, PyTorch ${f(r.torch_ms)} ms${r.torch_setting ? ` (${r.torch_setting})` : ''}${r.ort_ms !== undefined ? `, ORT ${f(r.ort_ms)} ms` : ''}, ratio ${f(r.ratio)}${load}${r.error ? ` (${r.error})` : ''}`);
    }
  } finally {
    torch.forEach((t) => t.close());
  }
  report.machine.loadavgEnd = os.loadavg();
  return report;
}
