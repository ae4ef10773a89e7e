/** bench/results.json and its Markdown table. */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

import type { BenchReport, CaseResult } from './run.js';

const n = (x: number | null | undefined, d = 2) => (x === null || x === undefined ? '—' : x.toFixed(d));
const pct = (x: number | undefined) => (x === undefined ? '' : ` (${(x * 100).toFixed(0)}%)`);

function rate(r: CaseResult): string {
  if (r.kexue_gflops !== undefined) return `${n(r.kexue_gflops, 1)} GFLOP/s${pct(r.kexue_of_sgemm_peak)}`;
  if (r.kexue_gbs !== undefined) return `${n(r.kexue_gbs, 1)} GB/s${pct(r.kexue_of_copy_peak)}`;
  return '';
}

function torchRate(r: CaseResult): string {
  if (r.torch_gflops !== undefined) return `${n(r.torch_gflops, 1)} GFLOP/s`;
  if (r.torch_gbs !== undefined) return `${n(r.torch_gbs, 1)} GB/s`;
  return '';
}

/** The report as a Markdown table with a header line about the machine and peaks. */
export function toMarkdown(rep: BenchReport): string {
  const lines: string[] = [];
  const env = Object.entries(rep.openblasEnv).map(([k, v]) => `${k}=${v}`).join(' ') || 'none';
  lines.push(`${rep.date} · ${rep.cpu} · ${rep.threads} threads · Node ${rep.node} · PyTorch ${rep.torch ?? `not run (${rep.torchError ?? 'disabled'})`} · ${rep.blas} · OPENBLAS env: ${env}`);
  if (rep.peaks) {
    const w = rep.peaksWithoutOpenblasOverrides;
    lines.push(
      `Peaks: OpenBLAS sgemm ${n(rep.peaks.sgemmGflops, 1)} GFLOP/s (${rep.peaks.sgemmN}³)` +
        (w ? `, ${n(w.sgemmGflops, 1)} GFLOP/s without OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE` : '') +
        `; memory copy ${n(rep.peaks.copyGBs, 1)} GB/s (read + write).`,
    );
  } else {
    lines.push(`Peaks not measured${rep.peaksError ? `: ${rep.peaksError}` : ''}.`);
  }
  lines.push('');
  lines.push('| case | kexue ms | PyTorch ms | kexue/PyTorch | kexue rate (of peak) | PyTorch rate | what |');
  lines.push('|---|---:|---:|---:|---:|---:|---|');
  for (const r of rep.results) {
    lines.push(`| ${r.case} | ${n(r.kexue_ms)} | ${n(r.torch_ms)} | ${n(r.ratio)} | ${rate(r)} | ${torchRate(r)} | ${r.what}${r.error ? ` — error: ${r.error}` : ''} |`);
  }
  return `${lines.join('\n')}\n`;
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
