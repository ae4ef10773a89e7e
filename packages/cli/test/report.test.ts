/**
 * `kexue report`: the charts made from metrics.jsonl, the self-contained page, its errors, and the
 * page rendered by headless Chromium (the Debian package `chromium`, installed by
 * scripts/setup.sh; that test is skipped, saying so, where it is absent).
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildCharts, runNames, type ReportRun } from '@kexue/cli';
import type { MetricsRecord } from '@kexue/models';

import { run } from './run_cli.js';
import { countNear, decodePng, distinctColours } from './png.js';
import { useTempDir } from '../../core-cuda/test/helpers.js';

const root = useTempDir('kexue-report-');
/** A fresh directory for one test. */
const tempDir = (): string => mkdtempSync(path.join(root, 'test-'));

/** A run directory with a metrics.jsonl of `steps` updates logged every 10, evaluated every 50. */
function writeRun(dir: string, scale: number, steps = 200): string {
  mkdirSync(dir, { recursive: true });
  const lines: string[] = [];
  for (let step = 10; step <= steps; step += 10) {
    lines.push(JSON.stringify({ kind: 'train', step, epoch: 0, loss: (scale * 3) / Math.sqrt(step), lr: 0.002 * (1 - step / steps), grad_norm: (scale * 10) / step, tokens_per_s: 5000 + step * scale, elapsed_s: step / 10 }));
    if (step % 50 === 0) lines.push(JSON.stringify({ kind: 'eval', step, epoch: 0, precision: 0.3 + step / 1000, recall: 0.2 + (step / 1000) * scale, f1: 0.25 + step / 1000, eval_s: 1.5 }));
  }
  writeFileSync(path.join(dir, 'metrics.jsonl'), lines.join('\n') + '\n');
  return dir;
}

const rec = (kind: 'train' | 'eval', step: number, fields: Record<string, number>): MetricsRecord => ({ kind, step, ...fields });

describe('kexue report: data', () => {
  it('makes one chart per quantity, the runs aligned on the union of their steps', () => {
    const runs: ReportRun[] = [
      { name: 'a', dir: '/r/a', records: [rec('train', 10, { epoch: 0, loss: 2, lr: 1e-3, grad_norm: 1, tokens_per_s: 100, elapsed_s: 1 }), rec('train', 20, { epoch: 0, loss: 1, lr: 1e-3, grad_norm: 0.5, tokens_per_s: 110, elapsed_s: 2 }), rec('eval', 20, { epoch: 0, f1: 0.4, eval_s: 3 })] },
      { name: 'b', dir: '/r/b', records: [rec('train', 15, { epoch: 0, loss: 3, lr: 2e-3, grad_norm: 2, tokens_per_s: 90, loss_scale: 1024, elapsed_s: 1 })] },
    ];
    const charts = buildCharts(runs);
    expect(charts.map((c) => c.title)).toEqual(['train loss', 'learning rate', 'gradient norm', 'tokens/s', 'loss scale', 'eval f1']);
    expect(charts[0]).toEqual({ id: 'train-loss', title: 'train loss', kind: 'train', key: 'loss', x: [10, 15, 20], series: [{ run: 0, y: [2, null, 1] }, { run: 1, y: [null, 3, null] }] });
    // a run without the quantity has no series (its colour stays its own: series carry the run's index)
    expect(charts[4]!.series).toEqual([{ run: 1, y: [1024] }]);
    expect(charts[5]).toMatchObject({ kind: 'eval', x: [20], series: [{ run: 0, y: [0.4] }] });
  });

  it('names runs by their directory, by their path where two share a name', () => {
    expect(runNames(['runs/ner-1', '/x/mlm'], '/w')).toEqual(['ner-1', 'mlm']);
    expect(runNames(['a/run', 'b/run', 'c'], '/w')).toEqual(['a/run', 'b/run', 'c']);
  });
});

describe('kexue report', () => {
  it('writes RUN/report.html for one run: self-contained, uPlot inlined; a JSON line on stdout', async () => {
    const runDir = writeRun(path.join(tempDir(), 'ner-run'), 1);
    const r = await run(['report', runDir]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const file = path.join(runDir, 'report.html');
    expect(JSON.parse(r.out)).toEqual({ report: file, runs: [runDir], charts: ['train loss', 'learning rate', 'gradient norm', 'tokens/s', 'eval precision', 'eval recall', 'eval f1'] });
    const html = readFileSync(file, 'utf8');
    expect(html).toContain('<title>kexue report: ner-run</title>');
    expect(html).toMatch(/var uPlot\s*=/); // uPlot's browser build, inlined
    expect(html).toContain('.uplot'); // and its style sheet
    // nothing is fetched: no external scripts, style sheets or images
    expect(html).not.toMatch(/<script[^>]*\ssrc=|<link\b|<img\b|https?:\/\/[^"'\s]*\.(js|css)\b/);
    // the page's data cannot end its script element early
    expect(html.match(/<\/script>/g)).toHaveLength(3);
  });

  it('overlays several runs into --out FILE, with --title', async () => {
    const root = tempDir();
    const a = writeRun(path.join(root, 'a'), 1);
    const b = writeRun(path.join(root, 'b'), 1.3, 150);
    const out = path.join(root, 'both.html');
    const r = await run(['report', a, b, '--out', out, '--title', 'A </script> and B']);
    expect(r.code).toBe(0);
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('<title>A &#60;/script&#62; and B</title>');
    expect(html.match(/<\/script>/g)).toHaveLength(3);
    const data = JSON.parse(/<script id="report-data" type="application\/json">(.*?)<\/script>/s.exec(html)![1]!);
    expect(data.title).toBe('A </script> and B');
    expect(data.runs.map((x: { name: string }) => x.name)).toEqual(['a', 'b']);
    expect(data.charts[0].series.map((s: { y: unknown[] }) => s.y.length)).toEqual([20, 20]);
    expect(data.pngName).toBe('both.png');
  });

  it('fails clearly: E_IO for a missing run or metrics.jsonl, E_FORMAT with FILE:LINE, --out needed for several runs', async () => {
    const root = tempDir();
    const empty = path.join(root, 'empty');
    mkdirSync(empty);
    const noMetrics = await run(['report', empty]);
    expect(noMetrics.code).toBe(1);
    expect(noMetrics.err).toMatch(/^kexue: error \[E_IO\]: .*empty has no metrics\.jsonl: .*empty\/metrics\.jsonl does not exist/);
    expect(existsSync(path.join(empty, 'report.html'))).toBe(false);

    const missing = await run(['report', path.join(root, 'nope')]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/\[E_IO\]: run directory .*nope does not exist/);

    const bad = writeRun(path.join(root, 'bad'), 1);
    writeFileSync(path.join(bad, 'metrics.jsonl'), readFileSync(path.join(bad, 'metrics.jsonl'), 'utf8') + '{"kind": "train", "step": \n');
    const malformed = await run(['report', bad]);
    expect(malformed.code).toBe(1);
    expect(malformed.err).toMatch(new RegExp(`\\[E_FORMAT\\]: ${path.join(bad, 'metrics.jsonl').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:25: `));

    const good = writeRun(path.join(root, 'good'), 1);
    const several = await run(['report', good, good]);
    expect(several.code).toBe(2);
    expect(several.err).toMatch(/several runs need --out FILE/);
    expect((await run(['report'])).code).toBe(2);
  });
});

/** chromium on PATH, or null. */
function findChromium(): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const file = path.join(dir, 'chromium');
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}
const chromium = findChromium();
const SKIP = chromium ? '' : ' [skipped: no chromium on PATH; scripts/setup.sh installs the Debian package]';

describe('kexue report in headless Chromium', () => {
  it.skipIf(!chromium)(`renders every chart with every run, exports a PNG, and screenshots to a non-blank image${SKIP}`, async () => {
    const root = tempDir();
    const a = writeRun(path.join(root, 'a'), 1);
    const b = writeRun(path.join(root, 'b'), 1.3, 150);
    const out = path.join(root, 'report.html');
    expect((await run(['report', a, b, '--out', out])).code).toBe(0);
    const shot = path.join(root, 'shot.png');
    const t0 = performance.now();
    // one browser start for both: the DOM after the page's script has drawn, and a screenshot
    const args = ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', `--user-data-dir=${path.join(root, 'profile')}`, '--no-first-run', '--virtual-time-budget=3000', '--window-size=1280,1500'];
    const r = spawnSync(chromium!, [...args, `--screenshot=${shot}`, '--dump-dom', `file://${out}#export-check`], { encoding: 'utf8', timeout: 90_000 });
    expect(r.status, r.stderr).toBe(0);
    if (!existsSync(shot)) spawnSync(chromium!, [...args, `--screenshot=${shot}`, `file://${out}`], { timeout: 90_000 });
    const seconds = (performance.now() - t0) / 1000;
    console.log(`chromium: ${seconds.toFixed(1)} s`);

    const dom = r.stdout;
    // 7 charts, each drawn with both runs' series
    expect(/<body[^>]*\bdata-rendered="(\d+)"/.exec(dom)?.[1]).toBe('7');
    const drawn = [...dom.matchAll(/<div class="chart" data-chart="([^"]+)"[^>]*\bdata-drawn="(\d+)"/g)].map((m) => [m[1], m[2]]);
    expect(drawn).toEqual(['train-loss', 'train-lr', 'train-grad_norm', 'train-tokens_per_s', 'eval-precision', 'eval-recall', 'eval-f1'].map((id) => [id, '2']));
    expect((dom.match(/<canvas/g) ?? []).length).toBe(7);
    // the Save PNG composite: two charts a row, four rows, a PNG of some size
    const exp = /data-export="(\d+)x(\d+) (\d+)"/.exec(dom);
    expect(exp, 'the page built no PNG').not.toBeNull();
    const [w, h, bytes] = exp!.slice(1).map(Number) as [number, number, number];
    expect(w).toBeGreaterThan(800);
    expect(h).toBeGreaterThan(4 * 260);
    expect(bytes).toBeGreaterThan(20_000);

    const png = decodePng(readFileSync(shot));
    expect([png.width, png.height]).toEqual([1280, 1500]);
    expect(distinctColours(png)).toBeGreaterThan(50);
    // the two runs' lines (their colours: #1f77b4 and #d62728) are on the screen
    expect(countNear(png, '#1f77b4', 40)).toBeGreaterThan(300);
    expect(countNear(png, '#d62728', 40)).toBeGreaterThan(300);
  });
});
