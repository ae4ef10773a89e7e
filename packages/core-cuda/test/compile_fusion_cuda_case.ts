// Run by compile_fusion.cuda.test.ts in a child process (KEXUE_FUSION is read once per process):
// E1 (a bias row, a mask) and AdamW in plain ops compiled on CUDA, each group of which the PTX path
// takes unless KEXUE_FUSION=interp. Prints one JSON line: the CUDA executor's counts over a
// replay each and the worst error of each case relative to its largest eager value.
import * as kx from '../src/index.js';
import { native } from '../src/native.js';

import { adamwPlain, mask, uniform } from './compile_helpers.js';
import { Rng } from './parity_cases.js';

const rng = new Rng(21);
const coin = mask(rng, [64, 1000]);
const cases: { name: string; graph: (...xs: kx.Tensor[]) => kx.Tensor[]; args: kx.Tensor[] }[] = [
  {
    name: 'E1',
    graph: (res, m, x, bias) => [kx.add(res!, kx.mul(kx.mul(m!, kx.add(x!, bias!)), 0.5))],
    args: [uniform(rng, [64, 1000]), coin.cast('float32'), uniform(rng, [64, 1000]), uniform(rng, [1000])],
  },
  {
    name: 'AdamW',
    graph: adamwPlain as (...xs: kx.Tensor[]) => kx.Tensor[],
    args: [
      uniform(rng, [300, 257]), uniform(rng, [300, 257], -0.1, 0.1), uniform(rng, [300, 257], 0, 0.01),
      uniform(rng, [300, 257]), kx.tensor([1e-3], []), kx.tensor([0.1], []), kx.tensor([0.001], []),
    ],
  },
];
const before = native.fusionStats().cuda;
const errors: Record<string, number> = {};
for (const c of cases) {
  const args = c.args.map((t) => t.to('cuda'));
  kx.tidy(() => {
    const eager = c.graph(...args);
    const compiled = kx.compile(c.graph);
    compiled(...args);
    const outs = compiled(...args);
    errors[c.name] = Math.max(
      ...eager.map((e, i) => {
        const ev = e.toFloat32Array();
        const ov = outs[i]!.toFloat32Array();
        const top = ev.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        return ev.reduce((m, v, j) => Math.max(m, Math.abs(ov[j]! - v)), 0) / top;
      }),
    );
  });
  kx.dispose([...c.args, ...args]);
}
coin.dispose();
const after = native.fusionStats().cuda;
console.log(
  JSON.stringify({
    ptx: after.ptx - before.ptx,
    interpreted: after.interpreted - before.interpreted,
    loadFailures: after.loadFailures - before.loadFailures,
    lastFailure: after.lastFailure,
    errors,
  }),
);
