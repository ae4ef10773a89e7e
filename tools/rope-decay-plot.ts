/**
 * The long-range decay plot of RoPE (ALGORITHMS.md §6.1): kx.ropeDecayCurve for base 10000 and
 * head size 128, drawn by Vega-Lite into docs/images/rope-decay.svg (rendered headless by Vega).
 *
 *   pnpm exec tsx --conditions=source tools/rope-decay-plot.ts [OUT.svg]
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { ropeDecayCurve } from '@kexue/core-cuda';
import * as vega from 'vega';
import * as vl from 'vega-lite';

const BASE = 10000;
const DIM = 128;
const MAX_DISTANCE = 2048;

const here = path.dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] ?? path.join(here, '..', 'docs', 'images', 'rope-decay.svg');

const curve = ropeDecayCurve({ dim: DIM, base: BASE, maxDistance: MAX_DISTANCE });
const spec: vl.TopLevelSpec = {
  $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
  title: { text: `RoPE long-range decay (base ${BASE}, d = ${DIM})`, subtitle: 'mean over j of |Σ_{i<j} exp(i·r·θ_i)|, θ_i = base^(−2i/d)' },
  width: 640,
  height: 320,
  data: { values: curve.distance.map((r, k) => ({ distance: r, value: curve.value[k] })) },
  mark: { type: 'line', strokeWidth: 1 },
  encoding: {
    x: { field: 'distance', type: 'quantitative', title: 'relative distance |m − n|' },
    y: { field: 'value', type: 'quantitative', title: 'relative upper bound' },
  },
};
const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
writeFileSync(out, await view.toSVG());
view.finalize();
console.log(`wrote ${out} (${curve.distance.length} points, ${curve.value[0]!.toFixed(2)} at 0, ${curve.value[curve.value.length - 1]!.toFixed(2)} at ${MAX_DISTANCE})`);
