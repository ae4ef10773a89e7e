/** bench/results.json and its Markdown table. */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

import type { BenchReport, CaseResult } from './result.js';

const n = (x: number | null | undefined, d = 2) => (x === null || x === undefined ? '—' : x.toFixed(d));
const pct = (x: number | undefined) => (x === undefined ? '' : ` (${(x * 100).toFixed(0)}%)`);

function rate(r: CaseResult): string {
  if (r.kexue_gflops !== undefined) return `${n(r.kexue_gflops, 1)} GFLOP/s${pct(r.kexue_of_onednn_peak)}`;
  if (r.kexue_gbs !== undefined) return `${n(r.kexue_gbs, 1)} GB/s${pct(r.kexue_of_copy_peak)}`;
  return '';
}

function torchRate(r: CaseResult): string {
  if (r.torch_gflops !== undefined) return `${n(r.torch_gflops, 1)} GFLOP/s`;
  if (r.torch_gbs !== undefined) return `${n(r.torch_gbs, 1)} GB/s`;
  return '';
}

const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MB`;

/** A ratio, or the ratio flagged as taken under load (other processes took CPU during its blocks). */
function ratioCell(x: number | null | undefined, r: CaseResult): string {
  if (x === null || x === undefined) return '—';
  return r.loaded ? `${n(x)} (loaded)` : n(x);
}

/** The machine's header lines: ISA, SIMD target, load. */
function machineLines(rep: BenchReport): string[] {
  const m = rep.machine;
  if (!m) return [];
  const avg = (xs: number[] | undefined) => (xs ? xs.map((x) => x.toFixed(2)).join(' ') : '?');
  const loaded = rep.results.filter((r) => r.loaded).map((r) => r.case);
  return [
    `Machine: ${m.cpus} CPUs, ISA ${m.isa} (/proc/cpuinfo), addon SIMD ${m.addonSimd}; load average ${avg(m.loadavgStart)} at the start, ${avg(m.loadavgEnd)} at the end; ` +
      `busy cores before the first case ${m.busyCoresAtStart === null ? '?' : m.busyCoresAtStart.toFixed(2)}.`,
    loaded.length
      ? `Taken under load (other processes used more than a tenth of a core in a block even after retries; ratios marked "(loaded)" are not clean): ${loaded.join(', ')}.`
      : 'Every case was measured without load from other processes (each block checked against /proc).',
  ];
}

/** What the PyTorch settings are, which ran and how often each was the fastest. */
function torchSettingsLine(rep: BenchReport): string {
  const settings = rep.torchSettings ?? ['passive', 'default'];
  const wins = new Map<string, number>();
  for (const r of rep.results) if (r.torch_setting) wins.set(r.torch_setting, (wins.get(r.torch_setting) ?? 0) + 1);
  return (
    `PyTorch ms is the fastest of its settings (${settings.join(', ')}), the one that won in brackets: passive = OMP_WAIT_POLICY=PASSIVE, default = unset` +
    (settings.some((s) => s.endsWith('_openblas_auto')) ? '; _openblas_auto = without OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE (OpenBLAS picks its kernels for this CPU)' : '') +
    (wins.size ? `; won: ${[...wins].map(([s, count]) => `${s} ${count}×`).join(', ')}` : '') +
    '. Foreign load: the most CPU (cores) other processes used during a kept block.'
  );
}

function torchCell(r: CaseResult): string {
  if (r.torch_ms === null) return '—';
  return `${n(r.torch_ms)}${r.torch_setting ? ` (${r.torch_setting})` : ''}`;
}

function loadCell(r: CaseResult): string {
  return r.load ? `${n(r.load.foreign_cores_max)}` : '?';
}

/** The idle-neighbour case as its own table. */
function neighbourLines(r: CaseResult): string[] {
  const nb = r.neighbour;
  if (!nb) return [];
  const lines = [
    '',
    `Idle neighbour: a CPU-bound process with ${nb.workers} busy threads beside a process doing ${nb.pattern}; the neighbour alone: ${n(nb.alone_ms, 3)} ms per unit.`,
    '',
    '| idle process | neighbour ms/unit | neighbour slowdown | cores the idle process used | share of time in products |',
    '|---|---:|---:|---:|---:|',
  ];
  for (const [key, v] of Object.entries(nb.idlers)) {
    lines.push(`| ${key.replace('_', ' ')} | ${n(v.ms, 3)} | ${(v.slowdown * 100).toFixed(1)}%${r.loaded ? ' (loaded)' : ''} | ${n(v.idler_cores)} | ${(v.product_share * 100).toFixed(1)}% |`);
  }
  return lines;
}

/** The bert-*-load cases as their own table. */
function footprintLines(rows: CaseResult[]): string[] {
  if (rows.length === 0) return [];
  const lines = ['', '| model | side | load ms | peak RSS | RSS before loading |', '|---|---|---:|---:|---:|'];
  for (const r of rows) {
    for (const [side, f] of Object.entries(r.footprint ?? {})) {
      lines.push(`| ${r.case.replace(/-load$/, '')} | ${side} | ${n(f.load_ms, 0)}${r.loaded ? ' (loaded)' : ''} | ${mb(f.peak_rss_bytes)} | ${mb(f.base_rss_bytes)} |`);
    }
  }
  return lines;
}

/** The report as a Markdown table with header lines about the machine, its load and the peaks. */
export function toMarkdown(rep: BenchReport): string {
  const lines: string[] = [];
  const env = Object.entries(rep.openblasEnv).map(([k, v]) => `${k}=${v}`).join(' ') || 'none';
  const ort = rep.ort ? `ONNX Runtime ${rep.ort}` : `ONNX Runtime not run (${rep.ortError ?? 'not installed'})`;
  lines.push(`${rep.date} · ${rep.cpu} · ${rep.threads} threads · Node ${rep.node} · PyTorch ${rep.torch ?? `not run (${rep.torchError ?? 'disabled'})`} · ${ort} · ${rep.blas} · OPENBLAS env: ${env}`);
  lines.push(...machineLines(rep));
  if (rep.peaks) {
    const w = rep.peaksWithoutOpenblasOverrides;
    lines.push(
      `Peaks (${rep.peaks.sgemmN}³): oneDNN matmul ${n(rep.peaks.onednnGflops, 1)} GFLOP/s (kexue's products; kexue's GFLOP/s are shown as a fraction of it), ` +
        `OpenBLAS sgemm ${n(rep.peaks.sgemmGflops, 1)} GFLOP/s (PyTorch's products)` +
        (w ? `, ${n(w.sgemmGflops, 1)} GFLOP/s without OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE` : '') +
        `; memory copy ${n(rep.peaks.copyGBs, 1)} GB/s (read + write).`,
    );
  } else {
    lines.push(`Peaks not measured${rep.peaksError ? `: ${rep.peaksError}` : ''}.`);
  }
  lines.push(torchSettingsLine(rep));
  lines.push('');
  lines.push('| case | kexue ms | PyTorch ms | kexue/PyTorch | ORT ms | kexue/ORT | kexue rate (of peak) | PyTorch rate | foreign load | what |');
  lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---|');
  const timed = rep.results.filter((r) => !r.footprint && !r.neighbour);
  for (const r of timed) {
    lines.push(
      `| ${r.case} | ${n(r.kexue_ms)} | ${torchCell(r)} | ${ratioCell(r.ratio, r)} | ${n(r.ort_ms)} | ${ratioCell(r.ratio_ort, r)} | ${rate(r)} | ${torchRate(r)} | ${loadCell(r)} | ${r.what}${countsCell(r)}${r.error ? ` — error: ${r.error}` : ''} |`,
    );
  }
  for (const r of rep.results.filter((x) => x.neighbour)) lines.push(...neighbourLines(r));
  lines.push(...footprintLines(rep.results.filter((r) => r.footprint)));
  for (const r of rep.results.filter((x) => (x.footprint || x.neighbour) && x.error)) lines.push('', `${r.case} — error: ${r.error}`);
  return `${lines.join('\n')}\n`;
}

/** A case's per-iteration counts after its description: " (per iteration: native_calls 1, …)". */
function countsCell(r: CaseResult): string {
  return r.counts ? ` (per iteration: ${Object.entries(r.counts).map(([k, v]) => `${k} ${v}`).join(', ')})` : '';
}

/** Reads a previous results.json (null when absent or unreadable). */
export function readReport(path: string): BenchReport | null {
  if (!existsSync(path)) return null;
  try {
    const j = JSON.parse(readFileSync(path, 'utf8')) as BenchReport;
    return Array.isArray(j.results) ? j : null;
  } catch {
    return null;
  }
}

/** The new report with the cases it did not run carried over from `old` (in `order`). */
export function mergeReports(old: BenchReport | null, fresh: BenchReport, order: string[]): BenchReport {
  if (!old) return fresh;
  const byCase = new Map(old.results.map((r) => [r.case, r]));
  for (const r of fresh.results) byCase.set(r.case, r);
  const results = order.filter((c) => byCase.has(c)).map((c) => byCase.get(c)!);
  return { ...fresh, results };
}

/** Writes JSON (atomically) and the Markdown next to it. */
export function writeReport(jsonPath: string, mdPath: string, rep: BenchReport): void {
  writeFileSync(`${jsonPath}.tmp`, `${JSON.stringify(rep, null, 2)}\n`);
  renameSync(`${jsonPath}.tmp`, jsonPath);
  writeFileSync(mdPath, toMarkdown(rep));
}
