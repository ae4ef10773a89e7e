/**
 * Load time and peak memory of a BERT inference side, each in a fresh process: the time from
 * nothing (the library imported) to a model ready to run, and the peak resident set (VmHWM) after
 * loading it and running every point of INFER_POINTS once. kexue and ONNX Runtime run this file
 * as a child (node --import tsx bench/src/footprint.ts '<json>'); PyTorch runs torch_bench.py
 * footprint. The child also reports its CPU time, so that the driver can tell what other
 * processes used meanwhile.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { bertInputs, ensureBertFiles, INFER_POINTS, type BertFiles, type BertInputs, type BertSizes, type InferModel } from './bert_files.js';
import { summarizeLoad, waitForQuiet, type CheckedBlock } from './blocks.js';
import type { MeasureContext, MeasuredFields } from './cases.js';
import { machineTicks } from './proc.js';
import { hasOpenblasOverrides } from './peaks.js';
import { torchFields, type FootprintResult } from './result.js';
import { median } from './stats.js';
import { benchPython, TORCH_SCRIPT, torchEnv, torchSetting } from './torch.js';

export type FootprintSide = 'kexue' | 'ort' | 'torch';

/** What a child reports. */
export interface ChildFootprint {
  load_ms: number;
  /** Resident set before the model (the runtime and the library alone), bytes. */
  base_rss_bytes: number;
  /** VmHWM after loading and running the points, bytes. */
  peak_rss_bytes: number;
}

/** One fresh-process measurement, with the CPU other processes used while it ran. */
export interface Footprint extends ChildFootprint {
  /** CPU (cores) used by every process but the child and this one during the child's life; null without /proc. */
  foreign_cores: number | null;
}

interface ChildRequest {
  side: 'kexue' | 'ort';
  sizes: BertSizes;
  files: BertFiles;
  threads: number;
}

const SELF = fileURLToPath(import.meta.url);
const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** VmRSS or VmHWM of this process, bytes. */
export function vmBytes(field: 'VmRSS' | 'VmHWM', status = readFileSync('/proc/self/status', 'utf8')): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
  if (!m) throw new Error(`/proc/self/status has no ${field}`);
  return Number(m[1]) * 1024;
}

/**
 * The load cases' one PyTorch setting: passive, on OpenBLAS's own kernels where the environment
 * overrides them (PyTorch as it runs alone here; loading hardly depends on either).
 */
export const FOOTPRINT_TORCH_SETTING = torchSetting('passive', hasOpenblasOverrides() ? '_openblas_auto' : '');

/** Runs one side's footprint in a fresh process; rejects with the child's error. */
export async function measureFootprint(side: FootprintSide, sizes: BertSizes, files: BertFiles, threads: number, cpus: number): Promise<Footprint> {
  const [cmd, args, env] =
    side === 'torch'
      ? [benchPython(), [TORCH_SCRIPT, 'footprint', JSON.stringify({ config: sizes, weights: files.weights, threads, points: INFER_POINTS })], torchEnv(threads, FOOTPRINT_TORCH_SETTING)]
      : [process.execPath, ['--conditions=source', '--import', 'tsx', SELF, JSON.stringify({ side, sizes, files, threads } satisfies ChildRequest)], process.env];
  const before = { machine: machineTicks(), own: process.cpuUsage(), at: process.hrtime.bigint() };
  const { stdout, stderr, code } = await new Promise<{ stdout: string; stderr: string; code: number | null }>((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (c) => resolve({ stdout: out, stderr: err, code: c }));
  });
  const wallS = Number(process.hrtime.bigint() - before.at) / 1e9;
  const after = machineTicks();
  const reply = JSON.parse(stdout.trim().split('\n').pop() || '{}') as Partial<ChildFootprint> & { ok?: boolean; error?: string; cpu_s?: number };
  if (!reply.ok || reply.load_ms === undefined || reply.peak_rss_bytes === undefined || reply.base_rss_bytes === undefined) {
    throw new Error(`${side} footprint (exit ${code}): ${reply.error ?? (stderr.trim().split('\n').slice(-3).join(' | ') || 'no output')}`);
  }
  const total = after.total - before.machine.total;
  const ownCpu = process.cpuUsage(before.own);
  const busyCoreS = total > 0 ? ((after.busy - before.machine.busy) / total) * cpus * wallS : 0;
  const foreign = reply.cpu_s === undefined ? null : Math.max(0, busyCoreS - reply.cpu_s - (ownCpu.user + ownCpu.system) / 1e6) / wallS;
  return { load_ms: reply.load_ms, base_rss_bytes: reply.base_rss_bytes, peak_rss_bytes: reply.peak_rss_bytes, foreign_cores: foreign };
}

/**
 * A bert-*-load case: each side in fresh processes, the sides' order rotating over the rounds
 * (at most 3); a run under load from other processes is repeated like a timed block. PyTorch runs
 * in FOOTPRINT_TORCH_SETTING, and only where its children started.
 */
export async function measureLoadCase(model: InferModel, ctx: MeasureContext): Promise<MeasuredFields> {
  const files = ensureBertFiles(model);
  const sides: FootprintSide[] = ctx.torch.length ? ['kexue', 'ort', 'torch'] : ['kexue', 'ort'];
  const runs = new Map<FootprintSide, CheckedBlock<Footprint>[]>(sides.map((s) => [s, []]));
  const errors = new Map<FootprintSide, string>();
  for (let round = 0; round < Math.min(ctx.rounds, 3); round++) {
    for (let i = 0; i < sides.length; i++) {
      const side = sides[(i + round) % sides.length]!;
      if (errors.has(side)) continue;
      try {
        runs.get(side)!.push(await checkedFootprint(side, model.sizes, files, ctx));
      } catch (e) {
        errors.set(side, (e as Error).message);
      }
    }
  }
  const summary = (side: FootprintSide): FootprintResult | undefined => {
    const r = runs.get(side)!.map((b) => b.value);
    if (r.length === 0) return undefined;
    const load = r.map((f) => f.load_ms);
    return { load_ms: median(load), load_samples: load, base_rss_bytes: median(r.map((f) => f.base_rss_bytes)), peak_rss_bytes: median(r.map((f) => f.peak_rss_bytes)) };
  };
  const footprint = Object.fromEntries(sides.map((s) => [s, summary(s)]).filter(([, f]) => f !== undefined)) as MeasuredFields['footprint'];
  const kexue = footprint?.kexue?.load_ms ?? null;
  const ort = footprint?.ort?.load_ms ?? null;
  const torch = footprint?.torch?.load_ms ?? null;
  const blocks = [...runs.values()].flat();
  return {
    kexue_ms: kexue,
    ort_ms: ort,
    ...torchFields(new Map(sides.includes('torch') ? [[FOOTPRINT_TORCH_SETTING.name, torch]] : [])),
    ratio: kexue !== null && torch !== null ? kexue / torch : null,
    ratio_ort: kexue !== null && ort !== null ? kexue / ort : null,
    kexue_samples: footprint?.kexue?.load_samples ?? [],
    footprint,
    load: summarizeLoad(blocks),
    loaded: blocks.some((b) => b.loaded),
    ...(errors.size ? { error: [...errors.values()].join('; ') } : {}),
  };
}

/** One footprint after waiting for quiet, repeated (policy.retries times at most) while taken under load. */
async function checkedFootprint(side: FootprintSide, sizes: BertSizes, files: BertFiles, ctx: MeasureContext): Promise<CheckedBlock<Footprint>> {
  let best: CheckedBlock<Footprint> | null = null;
  for (let attempt = 1; attempt <= 1 + ctx.policy.retries; attempt++) {
    if (ctx.policy.check) await waitForQuiet(ctx.policy.quietWaitMs, ctx.cpus);
    const f = await measureFootprint(side, sizes, files, ctx.threads, ctx.cpus);
    const foreign = f.foreign_cores;
    const block: CheckedBlock<Footprint> = {
      value: f,
      // the child's CPU comes from its own report, so the foreign share is known in cores, not ticks
      load: foreign === null ? null : { foreignCores: foreign, siblingCores: 0, foreignTicks: Number.NaN },
      loaded: foreign !== null && foreign > ctx.policy.limit.cores,
      attempts: attempt,
    };
    if (!best || (foreign ?? 0) < (best.value.foreign_cores ?? 0)) best = block;
    best.attempts = attempt;
    if (!block.loaded) break;
  }
  return best!;
}

/** The child: loads the side's library, then its model (timed), runs the points, prints one JSON line. */
async function child(req: ChildRequest): Promise<ChildFootprint & { ok: true; cpu_s: number }> {
  // only the side's own library is imported: the other's memory must not count
  let load: () => Promise<(x: BertInputs) => Promise<void> | void>;
  if (req.side === 'kexue') {
    const [kx, { kexueBert }] = await Promise.all([import('@kexue/core-cuda'), import('./bert_kexue.js')]);
    kx.setNumThreads(req.threads);
    load = async () => {
      const model = kexueBert(req.sizes, req.files.weights);
      return (x) => model.run(x);
    };
  } else {
    const [, { ortBert }] = await Promise.all([import('onnxruntime-node'), import('./bert_ort.js')]);
    load = async () => {
      const session = await ortBert(req.files.onnx, req.threads);
      return (x) => session.run(x);
    };
  }
  const points = INFER_POINTS.map(([b, t]) => bertInputs(req.sizes, b, t));
  const base = vmBytes('VmRSS');
  const t0 = process.hrtime.bigint();
  const run = await load();
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  for (const x of points) await run(x);
  const cpu = process.cpuUsage();
  return { ok: true, load_ms: loadMs, base_rss_bytes: base, peak_rss_bytes: vmBytes('VmHWM'), cpu_s: (cpu.user + cpu.system) / 1e6 };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  child(JSON.parse(process.argv[2] ?? '{}') as ChildRequest).then(
    (r) => {
      console.log(JSON.stringify(r));
      process.exit(0);
    },
    (e: Error) => {
      console.log(JSON.stringify({ ok: false, error: e.message }));
      process.exit(1);
    },
  );
}
