/**
 * Issue 20's speed cases: drawing from the von Mises–Fisher distribution (ALGORITHMS.md §5.2),
 * 10⁶ draws at d = 4 and d = 64 (κ = 20 and 100, the test vectors' settings), beside a PyTorch
 * implementation of the same samplers (torch_bench.py's vmf_*):
 *
 * - w by the inverse CDF: kexue's native table lookup (the table built once in setup, δ = 1e-6)
 *   against torch.rand + torch.searchsorted + linear interpolation on the same table, built in
 *   float64 and kept in float32 on both sides, the grid points computed rather than read;
 * - w by Wood's rejection sampler: kexue's native per-draw loop against the usual vectorised PyTorch
 *   form (torch.distributions.Beta proposals for the draws still rejected, until none is);
 * - z = wμ + sqrt(1 − w²)ν for a batch of unit μ (w by the inverse CDF, ν from Gaussian noise):
 *   kx.vmf.sample against the same composition in torch.
 *
 * Both sides compute the draws in the timed iteration; the sample mean of w is checked against
 * A_d(κ) in setup (a sampler that drew the wrong law would fail there, not be timed).
 */
import * as kx from '@kexue/core-cuda';

import type { TimedCase } from './cases.js';

const DRAWS = 1_000_000;
const SETTINGS = [
  { d: 4, kappa: 20 },
  { d: 64, kappa: 100 },
] as const;
const DELTA = 1e-6;

/** Fails the case's setup when the mean of w is more than 5 standard errors from A_d(κ). */
function checkMean(w: kx.Tensor, d: number, kappa: number, what: string): void {
  const a = w.toFloat32Array();
  let s = 0;
  let s2 = 0;
  for (const x of a) {
    s += x;
    s2 += x * x;
  }
  const mean = s / a.length;
  const se = Math.sqrt((s2 / a.length - mean * mean) / a.length);
  const expected = kx.vmf.meanLength(d, kappa);
  if (Math.abs(mean - expected) > 5 * se) throw new kx.ArgumentError(`${what}: mean of w ${mean} is not A_d(κ) = ${expected}`);
}

function wCase(method: 'icdf' | 'wood', d: number, kappa: number): TimedCase {
  return {
    name: `vmf-w-${method}-d${d}-1m`,
    what:
      method === 'icdf'
        ? `10⁶ draws of w = ⟨μ, x⟩ of vMF(d = ${d}, κ = ${kappa}) by the post's inverse CDF (a table on the grid δ = ${DELTA} built once; a uniform, bisection, linear interpolation); PyTorch: torch.rand, torch.searchsorted and a lerp on the same table`
        : `10⁶ draws of w of vMF(d = ${d}, κ = ${kappa}) by Wood's rejection sampler (Beta(${(d - 1) / 2}, ${(d - 1) / 2}) proposals); PyTorch: torch.distributions.Beta proposals for the draws still rejected, until none is`,
    setup() {
      const icdf = method === 'icdf' ? kx.vmf.InverseCdf.build(d, kappa, { delta: DELTA }) : null;
      const rng = new kx.Philox(1);
      const draw = () => (icdf ? icdf.sample(DRAWS, rng) : kx.vmf.sampleWood(DRAWS, d, kappa, rng));
      const first = draw();
      checkMean(first, d, kappa, `vmf ${method}`);
      first.dispose();
      return {
        run: () => draw().dispose(),
        dispose: () => icdf?.dispose(),
        torchArgs: { method, d, kappa, n: DRAWS, delta: DELTA },
      };
    },
  };
}

function zCase(d: number, kappa: number): TimedCase {
  return {
    name: `vmf-z-icdf-d${d}-1m`,
    what: `10⁶ draws z ~ vMF(μ, κ = ${kappa}) on S^${d - 1} for 10⁶ fixed unit μ [10⁶, ${d}]: w by the inverse CDF, ν from N(0, I) projected off μ and normalised, z = wμ + sqrt(1 − w²)ν (kx.vmf.sample; PyTorch: the same ops)`,
    heavy: true,
    setup() {
      const icdf = kx.vmf.InverseCdf.build(d, kappa, { delta: DELTA });
      const mu = kx.tidy(() => {
        const m = kx.randomNormal([DRAWS, d], { seed: 7 });
        return kx.keep(kx.div(m, kx.sqrt(kx.sum(kx.mul(m, m), -1, true))));
      });
      const rng = new kx.Philox(2);
      return {
        run: () => kx.tidy(() => void kx.vmf.sample(mu, kappa, { method: 'icdf', icdf }, rng)),
        dispose: () => {
          icdf.dispose();
          mu.dispose();
        },
        torchArgs: { method: 'icdf', d, kappa, n: DRAWS, delta: DELTA },
      };
    },
  };
}

/** The vMF sampling cases: w by each sampler and full z, at d = 4 and d = 64. */
export function vmfCases(): TimedCase[] {
  return SETTINGS.flatMap(({ d, kappa }) => [wCase('icdf', d, kappa), wCase('wood', d, kappa), zCase(d, kappa)]);
}
