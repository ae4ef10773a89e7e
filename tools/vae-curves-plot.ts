/**
 * The vMF-VAE against the Gaussian VAE on Fashion-MNIST (ALGORITHMS.md §5.3, docs/vmf-vae.md): the
 * test evaluations of two `kexue train vae` runs (their metrics.jsonl) drawn by Vega-Lite into
 * docs/images/vmf-vae-curves.svg — reconstruction BCE per image and KL per image, by epoch.
 *
 *   pnpm exec tsx --conditions=source tools/vae-curves-plot.ts VMF_RUN GAUSSIAN_RUN [OUT.svg]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as vega from 'vega';
import * as vl from 'vega-lite';

const here = path.dirname(fileURLToPath(import.meta.url));
const [vmfRun, gaussianRun, outArg] = process.argv.slice(2);
if (!vmfRun || !gaussianRun) throw new Error('usage: tsx tools/vae-curves-plot.ts VMF_RUN GAUSSIAN_RUN [OUT.svg]');
const out = outArg ?? path.join(here, '..', 'docs', 'images', 'vmf-vae-curves.svg');

/** One row per evaluation and term: { model, epoch, term, value }. */
function rows(run: string, model: string): Array<Record<string, unknown>> {
  const evals = readFileSync(path.join(run, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, number | string>)
    .filter((r) => r.kind === 'eval');
  return evals.flatMap((r) => [
    { model, epoch: r.epoch, term: 'reconstruction BCE per image', value: r.bce },
    { model, epoch: r.epoch, term: 'KL per image (nats)', value: r.kl },
  ]);
}

const spec: vl.TopLevelSpec = {
  $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
  title: { text: 'vMF-VAE (κ = 20, KL constant) vs Gaussian VAE on Fashion-MNIST, latent 4', subtitle: 'test set, z drawn from the posterior; one point per epoch' },
  data: { values: [...rows(vmfRun, 'vMF-VAE'), ...rows(gaussianRun, 'Gaussian VAE')] },
  facet: { column: { field: 'term', type: 'nominal', title: null } },
  resolve: { scale: { y: 'independent' } },
  spec: {
    width: 320,
    height: 240,
    mark: { type: 'line', point: { size: 12 } },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', title: 'epoch' },
      y: { field: 'value', type: 'quantitative', title: null, scale: { zero: false } },
      color: { field: 'model', type: 'nominal', title: null },
    },
  },
};
const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
writeFileSync(out, await view.toSVG());
view.finalize();
console.log(`wrote ${out}`);
