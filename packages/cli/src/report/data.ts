/**
 * The data of `kexue report`: each run's metrics.jsonl, shaped into charts. A chart is one
 * quantity (train loss, learning rate, gradient norm, tokens/s, any other number of the train
 * records, and each evaluation metric) against the update step, with one series per run on the
 * union of their steps (null where a run has no value at a step).
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';

import type { MetricsRecord } from '@kexue/models';

/** A run as the report shows it. */
export interface ReportRun {
  /** The name in legends: the directory's name (a longer path where two runs share one). */
  name: string;
  dir: string;
  records: MetricsRecord[];
}

/** One chart: x are the steps; every series has a value (or null) for each. */
export interface Chart {
  id: string;
  title: string;
  kind: 'train' | 'eval';
  /** The record key it plots. */
  key: string;
  x: number[];
  /** `run` indexes the report's runs (its colour); runs without this quantity have no series. */
  series: { run: number; y: (number | null)[] }[];
}

/** A row of the report's table: where each run got to. */
export interface RunSummary {
  name: string;
  dir: string;
  /** The last train record's step (0 when none). */
  steps: number;
  /** The last train record's loss. */
  loss: number | null;
  /** The last evaluation's metrics and step. */
  lastEval: { step: number; metrics: Record<string, number> } | null;
}

/** Keys of train records that are not curves (elapsed_s is wall time, not a property of the model). */
const TRAIN_SKIP = new Set(['kind', 'step', 'epoch', 'elapsed_s']);
/** Keys of eval records that are not metrics. */
const EVAL_SKIP = new Set(['kind', 'step', 'epoch', 'eval_s']);
/** The train quantities first, in this order; others after, as they first appear. */
const TRAIN_FIRST = ['loss', 'lr', 'grad_norm', 'tokens_per_s'];
const TRAIN_TITLES: Record<string, string> = {
  loss: 'train loss',
  lr: 'learning rate',
  grad_norm: 'gradient norm',
  tokens_per_s: 'tokens/s',
  loss_scale: 'loss scale',
  skipped_steps: 'skipped updates',
};

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** The legend names of run directories: their last path part, or their path from `cwd` where those clash. */
export function runNames(dirs: readonly string[], cwd: string): string[] {
  const base = dirs.map((d) => path.basename(path.resolve(cwd, d)));
  return dirs.map((d, i) => (base.filter((b) => b === base[i]).length > 1 ? path.relative(cwd, path.resolve(cwd, d)) || '.' : base[i]!));
}

/**
 * Reads the runs (E_IO for a directory that is missing or has no metrics.jsonl, naming it; E_FORMAT
 * with FILE:LINE for a malformed record).
 */
export async function loadRuns(dirs: readonly string[], cwd: string): Promise<ReportRun[]> {
  const { KexueIOError } = await import('@kexue/core-cuda');
  const { METRICS_FILE, readMetrics } = await import('@kexue/models');
  const names = runNames(dirs, cwd);
  return dirs.map((d, i) => {
    const dir = path.resolve(cwd, d);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new KexueIOError(`run directory ${dir} does not exist`);
    const file = path.join(dir, METRICS_FILE);
    if (!existsSync(file)) throw new KexueIOError(`${dir} has no ${METRICS_FILE}: ${file} does not exist (is it a training run directory?)`);
    return { name: names[i]!, dir, records: readMetrics(file) };
  });
}

/** The number keys of a run's records of one kind, in the order they first appear. */
function keysOf(runs: readonly ReportRun[], kind: 'train' | 'eval', skip: ReadonlySet<string>): string[] {
  const keys = new Set<string>();
  for (const run of runs) for (const r of run.records) if (r.kind === kind) for (const [k, v] of Object.entries(r)) if (!skip.has(k) && isNumber(v)) keys.add(k);
  return [...keys];
}

/** One chart of `key` over the runs' records of `kind`, or null when no run has it. */
function chart(runs: readonly ReportRun[], kind: 'train' | 'eval', key: string, title: string): Chart | null {
  const perRun = runs.map((run) => {
    const values = new Map<number, number>();
    for (const r of run.records) if (r.kind === kind && isNumber(r[key])) values.set(r.step, r[key] as number);
    return values;
  });
  const x = [...new Set(perRun.flatMap((m) => [...m.keys()]))].sort((a, b) => a - b);
  const series = perRun.flatMap((values, run) => (values.size === 0 ? [] : [{ run, y: x.map((s) => values.get(s) ?? null) }]));
  if (series.length === 0) return null;
  return { id: `${kind}-${key}`, title, kind, key, x, series };
}

/** The charts of the report: train quantities, then evaluation metrics. */
export function buildCharts(runs: readonly ReportRun[]): Chart[] {
  const trainKeys = keysOf(runs, 'train', TRAIN_SKIP);
  const ordered = [...TRAIN_FIRST.filter((k) => trainKeys.includes(k)), ...trainKeys.filter((k) => !TRAIN_FIRST.includes(k))];
  const charts = [
    ...ordered.map((k) => chart(runs, 'train', k, TRAIN_TITLES[k] ?? `train ${k}`)),
    ...keysOf(runs, 'eval', EVAL_SKIP).map((k) => chart(runs, 'eval', k, `eval ${k}`)),
  ];
  return charts.filter((c): c is Chart => c !== null);
}

/** Where each run got to: last train step and loss, last evaluation. */
export function summarize(runs: readonly ReportRun[]): RunSummary[] {
  return runs.map((run) => {
    const train = run.records.filter((r) => r.kind === 'train');
    const evals = run.records.filter((r) => r.kind === 'eval');
    const last = train[train.length - 1];
    const lastEval = evals[evals.length - 1];
    const metrics: Record<string, number> = {};
    if (lastEval) for (const [k, v] of Object.entries(lastEval)) if (!EVAL_SKIP.has(k) && isNumber(v)) metrics[k] = v;
    return {
      name: run.name,
      dir: run.dir,
      steps: last?.step ?? 0,
      loss: last && isNumber(last.loss) ? last.loss : null,
      lastEval: lastEval ? { step: lastEval.step, metrics } : null,
    };
  });
}
