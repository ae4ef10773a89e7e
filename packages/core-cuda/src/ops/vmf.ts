/**
 * The von Mises–Fisher distribution vMF(μ, κ) on the sphere S^{d−1} (ALGORITHMS.md §5):
 * p(x) = C_d(κ) e^{κ⟨μ, x⟩}. A draw is x = wμ + sqrt(1 − w²)ν with w = ⟨μ, x⟩ from its
 * one-dimensional law (density ∝ e^{κw}(1 − w²)^{(d−3)/2}) and ν uniform on the sphere orthogonal
 * to μ. w comes from one of two native samplers, both seeded by Philox and run on the CPU or CUDA:
 *
 * - `InverseCdf`: the post's numerical inverse CDF (a table on the grid −1 + δ, −1 + 2δ, … < 1,
 *   built once natively in double, then linear interpolation of a uniform u, as np.interp), and
 *   its pre-drawn pool (the Keras code's constant of 10⁶ draws gathered at random indices);
 * - `sampleWood`: Wood's (1994) rejection sampler.
 *
 * Under kx.compile, draws from a Philox generator are taken afresh at every replay (as dropout's).
 * The pool gathers on the host, which a replay would not do again (it would repeat the traced
 * draws), so it refuses to run while kx.compile traces (E_ARG).
 *
 * `sample` composes z from μ with w held fixed (no gradient through w or κ, as §5.2 says), so
 * gradients reach μ through both wμ and ν. The normaliser, the mean resultant length A_d(κ) and
 * the KL to the uniform prior (§5.3) are float64 host math over ../bessel.ts.
 */
import { besselRatio, logBesselIve, logGamma } from '../bessel.js';
import { tensor, zeros } from '../creation.js';
import { resolveDevice } from '../device.js';
import { PhiloxStream } from '../random.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { runKernel, runKernel1 } from '../kernel.js';
import { registerGradient } from '../tape.js';
import { dynamicAttrs, tracing } from '../trace_hook.js';
import type { Tensor } from '../tensor.js';
import { assertFloat } from './check.js';
import { add, mul } from './elementwise.js';
import { Philox, drawKey, randomNormal, type RandomKey } from './random.js';
import { sum } from './reduce.js';

/** The grid step of the inverse-CDF table when none is given: 1e-6 (2·10⁶ points, 8 MB), the coarser grid §5.2 suggests for GPUs; the post's is 1e-7. */
export const DEFAULT_DELTA = 1e-6;

function checkDKappa(what: string, d: number, kappa: number): void {
  if (!Number.isInteger(d) || d < 2 || d > 1e6) throw new ArgumentError(`${what}: d must be an integer in [2, 1e6], got ${d}`);
  if (typeof kappa !== 'number' || !(kappa >= 0 && kappa <= 1e8)) throw new ArgumentError(`${what}: kappa must be in [0, 1e8], got ${kappa}`);
}

function checkCount(what: string, count: number): void {
  if (!Number.isSafeInteger(count) || count < 0) throw new ArgumentError(`${what}: count must be an integer >= 0, got ${count}`);
}

/**
 * A_d(κ) = I_{d/2}(κ) / I_{d/2−1}(κ): the length of E[x] (E[x] = A_d(κ)μ), which is also E[w].
 * 0 at κ = 0; tends to 1 as κ grows.
 */
export function meanLength(d: number, kappa: number): number {
  checkDKappa('vmf.meanLength', d, kappa);
  return besselRatio(d / 2, kappa);
}

/**
 * ln C_d(κ), the log normaliser of the density on the sphere (with respect to its surface measure):
 * (d/2 − 1) ln κ − (d/2) ln 2π − ln I_{d/2−1}(κ); at κ = 0, minus the log surface area
 * ln Γ(d/2) − ln 2 − (d/2) ln π.
 */
export function logNormalizer(d: number, kappa: number): number {
  checkDKappa('vmf.logNormalizer', d, kappa);
  if (kappa === 0) return logGamma(d / 2) - Math.LN2 - (d / 2) * Math.log(Math.PI);
  return (d / 2 - 1) * Math.log(kappa) - (d / 2) * Math.log(2 * Math.PI) - (logBesselIve(d / 2 - 1, kappa) + kappa);
}

/**
 * KL(vMF(μ, κ) ‖ uniform on S^{d−1}) in nats, which depends on d and κ only (§5.3):
 * κ A_d(κ) + ln C_d(κ) − ln C_d(0). The exponentially scaled Bessel function keeps it finite for κ
 * in the thousands and d in the hundreds.
 */
export function klToUniform(d: number, kappa: number): number {
  checkDKappa('vmf.klToUniform', d, kappa);
  if (kappa === 0) return 0;
  // ≥ 0 always; for κ near 0 the two normalisers cancel to rounding error, which must not show as a negative KL
  return Math.max(0, kappa * meanLength(d, kappa) + logNormalizer(d, kappa) - logNormalizer(d, 0));
}

/**
 * ln p(x) = ln C_d(κ) + κ⟨μ, x⟩ of points x [..., d] under vMF(μ, κ), μ [..., d] (broadcast
 * against x), both unit vectors (not checked: the density is of the sphere). Differentiable in x
 * and μ.
 */
export function logDensity(x: Tensor, mu: Tensor, kappa: number): Tensor {
  assertFloat(x, 'vmf.logDensity', 'x');
  assertFloat(mu, 'vmf.logDensity', 'mu');
  const d = x.shape[x.shape.length - 1]!;
  if (mu.shape[mu.shape.length - 1] !== d) throw new ShapeError(`vmf.logDensity: x has d = ${d}, mu ${String(mu.shape[mu.shape.length - 1])}`);
  return add(mul(sum(mul(x, mu), -1), kappa), logNormalizer(d, kappa));
}

/**
 * The post's inverse-CDF table of w for (d, κ) as a float32 CPU tensor: the CDF at the grid points
 * x_k = −1 + (k+1)δ < 1 (its last entry 1). Built natively, accumulated in double; δ = 1e-7 is the
 * post's grid (2·10⁷ points, 80 MB), default 1e-6.
 */
export function cdfTable(d: number, kappa: number, delta = DEFAULT_DELTA): Tensor {
  checkDKappa('vmf.cdfTable', d, kappa);
  if (!(delta >= 1e-9 && delta <= 0.5)) throw new ArgumentError(`vmf.cdfTable: delta must be in [1e-9, 0.5], got ${delta}`);
  return runKernel1('vmf_cdf', [], { d, kappa, delta });
}

/** The numerical inverse CDF of w for one (d, κ): the table, built once, on the device that samples. */
export class InverseCdf {
  readonly d: number;
  readonly kappa: number;
  readonly delta: number;
  /** The CDF table (float32 [n]) on the sampling device. */
  readonly table: Tensor;

  private constructor(d: number, kappa: number, delta: number, table: Tensor) {
    this.d = d;
    this.kappa = kappa;
    this.delta = delta;
    this.table = table;
  }

  /** Builds the table on the CPU and moves it to `device` (default the CPU). */
  static build(d: number, kappa: number, options: { delta?: number; device?: string } = {}): InverseCdf {
    const delta = options.delta ?? DEFAULT_DELTA;
    const device = resolveDevice(options.device ?? 'cpu');
    const host = cdfTable(d, kappa, delta);
    if (device === 'cpu') return new InverseCdf(d, kappa, delta, host);
    try {
      return new InverseCdf(d, kappa, delta, host.to(device));
    } finally {
      host.dispose();
    }
  }

  get device(): string {
    return this.table.device;
  }

  /** `count` draws of w (float32 [count]) on the table's device: draw i is np.interp of the uniform u(seed, offset + i). */
  sample(count: number, rng: RandomKey | Philox): Tensor {
    checkCount('InverseCdf.sample', count);
    const attrs = () => ({ count, delta: this.delta, ...drawKey(rng, count, 'InverseCdf.sample') });
    const first = attrs();
    if (rng instanceof Philox && tracing()) dynamicAttrs(1, () => [attrs()]);
    return runKernel1('vmf_sample_icdf', [this.table], first);
  }

  dispose(): void {
    this.table.dispose();
  }
}

/**
 * The Keras code's pool: `size` draws of w made once by the inverse CDF and kept on the host; each
 * `sample(count)` gathers entries at uniform random indices (so draws repeat across steps, as
 * there).
 */
export class WPool {
  readonly d: number;
  readonly kappa: number;
  readonly values: Float32Array;

  constructor(icdf: InverseCdf, size: number, rng: RandomKey | Philox) {
    checkCount('WPool', size);
    if (size === 0) throw new ArgumentError('WPool: size must be at least 1');
    this.d = icdf.d;
    this.kappa = icdf.kappa;
    const drawn = icdf.sample(size, rng);
    try {
      this.values = drawn.toFloat32Array();
    } finally {
      drawn.dispose();
    }
  }

  /** `count` entries (float32 [count]) at indices drawn from Philox(seed, offset + i), on `device`. */
  sample(count: number, rng: RandomKey | Philox, options: { device?: string } = {}): Tensor {
    checkCount('WPool.sample', count);
    if (tracing()) {
      throw new ArgumentError('WPool.sample: the pool gathers on the host, which a kx.compile replay would not repeat (every replay would reuse these draws); inside a compiled function sample w by the inverse CDF or Wood');
    }
    const { seed, offset } = drawKey(rng, count, 'WPool.sample');
    const n = this.values.length;
    const out = new Float32Array(count);
    // index i: floor(u · n) of the uniform u of random element offset + i (the native convention)
    const words = new PhiloxStream(seed, 0, 0, offset);
    for (let i = 0; i < count; i++) out[i] = this.values[Math.min(n - 1, Math.floor((words.nextUint32() / 2 ** 32) * n))]!;
    return tensor(out, [count], options.device !== undefined ? { device: options.device } : {});
  }
}

/**
 * `count` draws of w (float32 [count]) by Wood's rejection sampler on a device (default the CPU):
 * draw i reads its own Philox stream for key (seed, offset + i), so it is the same on every
 * device and whatever the threading.
 */
export function sampleWood(count: number, d: number, kappa: number, rng: RandomKey | Philox, options: { device?: string } = {}): Tensor {
  checkCount('vmf.sampleWood', count);
  checkDKappa('vmf.sampleWood', d, kappa);
  const key = drawKey(rng, count, 'vmf.sampleWood');
  if (rng instanceof Philox && tracing()) dynamicAttrs(1, () => [{ d, kappa, ...drawKey(rng, count, 'vmf.sampleWood') }]);
  const like = zeros([count], { dtype: 'uint8', ...(options.device !== undefined ? { device: options.device } : {}) });
  try {
    return runKernel1('vmf_sample_wood', [like], { d, kappa, ...key });
  } finally {
    like.dispose();
  }
}

/**
 * z = wμ + sqrt(1 − w²)ν with ν = (ε − ⟨ε, μ⟩μ) / ‖ε − ⟨ε, μ⟩μ‖: the reparameterised draw from
 * unit μ [B, d], w [B] and Gaussian noise ε [B, d], one native pass a row (dot products in double;
 * a row whose ε lies along μ gets ν = 0); w and ε are cast to μ's dtype. Differentiable in μ, w and
 * ε (one native pass back); §5.2 holds w fixed.
 */
export function compose(mu: Tensor, w: Tensor, eps: Tensor): Tensor {
  assertFloat(mu, 'vmf.compose', 'mu');
  if (mu.shape.length !== 2) throw new ShapeError(`vmf.compose: mu must be [B, d], got [${mu.shape.join(', ')}]`);
  const [B, d] = mu.shape as [number, number];
  if (w.shape.length !== 1 || w.shape[0] !== B) throw new ShapeError(`vmf.compose: w must be [${B}], got [${w.shape.join(', ')}]`);
  if (eps.shape.length !== 2 || eps.shape[0] !== B || eps.shape[1] !== d) throw new ShapeError(`vmf.compose: eps must be [${B}, ${d}], got [${eps.shape.join(', ')}]`);
  return runKernel1('vmf_compose', [mu, w.dtype === mu.dtype ? w : w.cast(mu.dtype), eps.dtype === mu.dtype ? eps : eps.cast(mu.dtype)]);
}

// One native pass a row each way (the same values as the composition of elementwise ops and row
// sums, in double): dμ, dw and dε (native/ops/vmf/math.h).
registerGradient('vmf_compose', ([dz], { inputs: [mu, w, eps] }) => {
  if (!dz) return [null, null, null];
  const [dmu, dw, deps] = runKernel('vmf_compose_backward', [mu!, w!, eps!, dz.dtype === mu!.dtype ? dz : dz.cast(mu!.dtype)]);
  return [dmu!, dw!, deps!];
});

/** How `sample` draws w. */
export type WSampler = { method: 'icdf'; icdf: InverseCdf } | { method: 'pool'; pool: WPool } | { method: 'wood' };

/**
 * Draws z ~ vMF(μ_b, κ) for each row of unit μ [B, d] on μ's device: w by the sampler, ν from
 * Gaussian noise, composed differentiably in μ. `rng` supplies B numbers for w, then B·d for the
 * noise (a Philox generator advances past them).
 */
export function sample(mu: Tensor, kappa: number, sampler: WSampler, rng: RandomKey | Philox): Tensor {
  assertFloat(mu, 'vmf.sample', 'mu');
  if (mu.shape.length !== 2) throw new ShapeError(`vmf.sample: mu must be [B, d], got [${mu.shape.join(', ')}]`);
  const [B, d] = mu.shape as [number, number];
  if (sampler.method !== 'wood') {
    const s = sampler.method === 'icdf' ? sampler.icdf : sampler.pool;
    if (s.d !== d || s.kappa !== kappa) throw new ArgumentError(`vmf.sample: the ${sampler.method} sampler is for d=${s.d}, kappa=${s.kappa}, not d=${d}, kappa=${kappa}`);
  }
  // a generator is passed on (w's numbers are taken first, then the noise's); a key's noise starts after w's
  let wRng: RandomKey | Philox = rng;
  let eRng: RandomKey | Philox = rng;
  if (!(rng instanceof Philox)) {
    const key = drawKey(rng, B + B * d, 'vmf.sample');
    wRng = key;
    eRng = { seed: key.seed, offset: key.offset + B };
  }
  const w =
    sampler.method === 'wood'
      ? sampleWood(B, d, kappa, wRng, { device: mu.device })
      : sampler.method === 'icdf'
        ? sampler.icdf.sample(B, wRng)
        : sampler.pool.sample(B, wRng, { device: mu.device });
  const eps = randomNormal([B, d], eRng, { device: mu.device });
  return compose(mu, w, eps);
}
