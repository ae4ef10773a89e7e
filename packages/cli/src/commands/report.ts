/** `kexue report RUN [RUN…]`: one self-contained HTML page of the runs' curves (../report/). */
import { writeFileSync } from 'node:fs';
import path from 'node:path';

import type { Command } from '../framework/command.js';
import { UsageError } from '../framework/errors.js';

export const report: Command = {
  name: 'report',
  summary: "Write an HTML page of training runs' loss and metric curves (offline; Save PNG button).",
  details:
    "Reads each run's metrics.jsonl and draws train loss, learning rate, gradient norm, tokens/s and each\n" +
    'evaluation metric against the step, the runs overlaid and named by their directories. The page inlines uPlot,\n' +
    'so it opens offline; its Save PNG button saves all charts as one image.',
  options: [
    { name: 'out', type: 'string', valueName: 'FILE', description: 'the HTML file (default: RUN/report.html for one run; required for several)' },
    { name: 'title', type: 'string', valueName: 'TEXT', description: 'the page title (default: the run names)' },
  ],
  positionals: [{ name: 'run', description: 'run directories (each with a metrics.jsonl)', required: true, variadic: true }],
  async run(args, ctx) {
    const dirs = args.positionals.run as string[];
    const outOption = args.options.out as string | undefined;
    if (outOption === undefined && dirs.length > 1) throw new UsageError('several runs need --out FILE for the report', 'report');
    const { ioError } = await import('@kexue/core-cuda');
    const { buildCharts, loadRuns, summarize } = await import('../report/data.js');
    const { reportHtml, uplotAssets } = await import('../report/html.js');
    const runs = await loadRuns(dirs, ctx.cwd);
    const out = outOption !== undefined ? path.resolve(ctx.cwd, outOption) : path.join(runs[0]!.dir, 'report.html');
    const charts = buildCharts(runs);
    const html = reportHtml(
      {
        title: (args.options.title as string | undefined) ?? `kexue report: ${runs.map((r) => r.name).join(', ')}`,
        runs,
        charts,
        summary: summarize(runs),
        generated: new Date(),
        pngName: `${path.basename(out).replace(/\.html?$/i, '')}.png`,
      },
      uplotAssets(),
    );
    try {
      writeFileSync(out, html);
    } catch (err) {
      throw ioError(`cannot write ${out}`, err);
    }
    ctx.stdout(`${JSON.stringify({ report: out, runs: runs.map((r) => r.dir), charts: charts.map((c) => c.title) })}\n`);
  },
};
