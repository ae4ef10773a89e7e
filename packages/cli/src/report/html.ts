/**
 * The report page: one self-contained HTML file (uPlot's script and style inlined from the
 * installed package, the data as JSON in the page), so it opens offline, from a file:// address
 * or as a CI artifact.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

import type { Chart, ReportRun, RunSummary } from './data.js';
import { PAGE_SCRIPT } from './page_script.js';

/** uPlot's browser build and style sheet, read from the installed `uplot` package. */
export interface UplotAssets {
  js: string;
  css: string;
}

export function uplotAssets(): UplotAssets {
  const require = createRequire(import.meta.url);
  return {
    js: readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8'),
    css: readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8'),
  };
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
/** Text safe inside a <script> or <style> element: no `</` can end it early. */
const inScript = (s: string) => s.replace(/<\/(script|style)/gi, '<\\/$1').replace(/<!--/g, '<\\!--');
/** JSON safe inside a <script> element. */
const jsonInScript = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');

function fmt(v: number | null): string {
  if (v === null) return '–';
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return Number(v.toPrecision(4)).toExponential();
  return String(Number(v.toPrecision(5)));
}

const STYLE = `
body { font-family: system-ui, sans-serif; margin: 16px 24px; color: #111; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
.meta { color: #555; font-size: 13px; margin-bottom: 12px; }
table { border-collapse: collapse; font-size: 13px; margin-bottom: 16px; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 10px; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: 12px; height: 4px; vertical-align: middle; margin-right: 6px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 16px; }
.chart { min-width: 0; border: 1px solid #e4e4e4; border-radius: 4px; padding: 8px; }
.chart h2 { font-size: 14px; margin: 0 0 4px; }
.plot { width: 100%; }
button { font-size: 13px; padding: 4px 12px; }
.empty { color: #777; }
`;

/** The runs' colours, in order (the table's swatches and the page script's series). */
export const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** The page for these runs and charts. */
export function reportHtml(input: { title: string; runs: readonly ReportRun[]; charts: readonly Chart[]; summary: readonly RunSummary[]; generated: Date; pngName: string }, assets: UplotAssets): string {
  const { title, runs, charts, summary } = input;
  const evalKeys = [...new Set(summary.flatMap((s) => (s.lastEval ? Object.keys(s.lastEval.metrics) : [])))];
  const rows = summary
    .map(
      (s, i) =>
        `<tr><td><span class="swatch" style="background:${COLORS[i % COLORS.length]}"></span>${escapeHtml(s.name)}</td>` +
        `<td class="num">${s.steps}</td><td class="num">${fmt(s.loss)}</td>` +
        `<td class="num">${s.lastEval ? s.lastEval.step : '–'}</td>` +
        evalKeys.map((k) => `<td class="num">${fmt(s.lastEval?.metrics[k] ?? null)}</td>`).join('') +
        `<td title="${escapeHtml(s.dir)}">${escapeHtml(s.dir)}</td></tr>`,
    )
    .join('\n');
  const head = `<tr><th>run</th><th>steps</th><th>last loss</th><th>last eval at</th>${evalKeys.map((k) => `<th>${escapeHtml(k)}</th>`).join('')}<th>directory</th></tr>`;
  const boxes = charts.map((c) => `<div class="chart" data-chart="${escapeHtml(c.id)}"><h2>${escapeHtml(c.title)}</h2><div class="plot"></div></div>`).join('\n');
  const data = { title, pngName: input.pngName, colors: COLORS, runs: runs.map((r) => ({ name: r.name, dir: r.dir })), charts };
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="kexue report">
<title>${escapeHtml(title)}</title>
<style>${inScript(assets.css)}</style>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<div class="meta">${runs.length} run${runs.length === 1 ? '' : 's'}, ${charts.length} chart${charts.length === 1 ? '' : 's'}; written ${escapeHtml(input.generated.toISOString())} by kexue report. <button id="save-png" type="button">Save PNG</button></div>
<table>
${head}
${rows}
</table>
${charts.length === 0 ? '<p class="empty">No metrics records yet.</p>' : ''}
<div class="charts">
${boxes}
</div>
<script id="report-data" type="application/json">${jsonInScript(data)}</script>
<script>${inScript(assets.js)}</script>
<script>${inScript(PAGE_SCRIPT)}</script>
</body>
</html>
`;
}
