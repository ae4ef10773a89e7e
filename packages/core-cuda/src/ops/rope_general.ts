/**
 * The general RoPE of ALGORITHMS.md §6.2: R_n = exp(nB) for an even-order real skew-symmetric
 * generator B (Bᵀ = −B), which satisfies R_mᵀ R_n = R_{n−m} for any such B. B is block-diagonalised
 * by an orthogonal P, B = P Λ Pᵀ with Λ's 2×2 blocks [[0, −θ_i], [θ_i, 0]], so exp(nB) = P exp(nΛ) Pᵀ
 * and exp(nΛ) is the standard (interleaved) RoPE with frequencies θ_i. Hence
 * ⟨exp(mB) W_q x, exp(nB) W_k y⟩ = ⟨R^Λ_m Pᵀ W_q x, R^Λ_n Pᵀ W_k y⟩: standard RoPE with
 * W_q' = Pᵀ W_q and W_k' = Pᵀ W_k gives the same attention scores.
 *
 * The decomposition: BᵀB = −B² is symmetric with eigenvalues θ_i², each twice. Its eigenvectors come
 * from LAPACK (kx.linalg.eigh, dsyevd in float64); each eigenvector u of θ² > 0 is paired with
 * v = Bu/θ (then Bu = θv and Bv = −θu), and vectors of B's null space are paired in order. The
 * pairing and orthonormalisation run in float64 in JS, so P is orthogonal to float64 precision and
 * R_mᵀ R_n = R_{n−m} holds to ~1e-15; P's columns carry eigh's float32 output precision, so
 * P Λ Pᵀ reproduces B to ~1e-7·max|B|.
 */
import { tensor } from '../creation.js';
import { ArgumentError, DTypeError, ShapeError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { assertTensor } from './check.js';
import { eigh } from './linalg.js';
import { matmul } from './matmul.js';
import { rope } from './rope.js';

/** B = P Λ Pᵀ with P orthogonal and Λ block-diagonal. */
export interface SkewDecomposition {
  /** The order d of B (even). */
  d: number;
  /**
   * P [d, d], row-major float64: columns 2i and 2i+1 span block i, with B P[:, 2i] = θ_i P[:, 2i+1]
   * and B P[:, 2i+1] = −θ_i P[:, 2i].
   */
  p: Float64Array;
  /** θ_i ≥ 0 [d/2], descending (as base^(−2i/d) is). */
  theta: Float64Array;
}

/** A general RoPE exp(nB) and its reduction to the standard form. */
export interface GeneralRope extends SkewDecomposition {
  /** exp(nB) [d, d], row-major float64, as P exp(nΛ) Pᵀ. */
  expm(n: number): Float64Array;
  /**
   * x [..., T, d] with row t replaced by exp(p_t B)·x_t (p_t = positions[t] + offset, default
   * t + offset): the rows turned into the block basis (x·P), rotated by kx.rope with frequencies θ,
   * and turned back (·Pᵀ). float32; differentiable in x.
   */
  apply(x: Tensor, options?: { positions?: Tensor | null; offset?: number }): Tensor;
  /**
   * The projections for standard RoPE: W' = Pᵀ W for W_q and W_k [d, in] (a [d] bias likewise), so
   * that kx.rope(·, { frequencies }) on x W_q'ᵀ and x W_k'ᵀ gives the scores exp(nB) gave.
   */
  convertProjection(w: Tensor): Tensor;
  /** θ as a float32 tensor [d/2] for kx.rope's `frequencies` (on `device`, default 'cpu'). */
  frequencies(device?: string): Tensor;
}

function matrixOf(b: Tensor, op: string): { d: number; m: Float64Array } {
  assertTensor(b, op, 'b');
  if (b.dtype !== 'float32') throw new DTypeError(`${op}: b must be float32, got ${b.describe()}`);
  if (b.rank !== 2 || b.shape[0] !== b.shape[1]) throw new ShapeError(`${op}: b must be a square matrix [d, d], got ${b.describe()}`);
  const d = b.shape[0]!;
  if (d === 0 || d % 2 !== 0) throw new ShapeError(`${op}: b must have an even order d ≥ 2, got ${b.describe()}`);
  const m = Float64Array.from(b.toFloat32Array());
  let scale = 0;
  for (const v of m) {
    if (!Number.isFinite(v)) throw new ArgumentError(`${op}: b has a non-finite entry`);
    scale = Math.max(scale, Math.abs(v));
  }
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      if (Math.abs(m[i * d + j]! + m[j * d + i]!) > 1e-6 * scale) {
        throw new ArgumentError(`${op}: b is not skew-symmetric: b[${i}][${j}] = ${m[i * d + j]} but b[${j}][${i}] = ${m[j * d + i]}`);
      }
    }
  }
  return { d, m };
}

/** b·u for a row-major [d, d] b. */
function apply64(b: Float64Array, u: Float64Array, d: number): Float64Array {
  const out = new Float64Array(d);
  for (let i = 0; i < d; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += b[i * d + j]! * u[j]!;
    out[i] = s;
  }
  return out;
}

const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, v, i) => s + v * b[i]!, 0);

/** u with its components along the basis removed (twice, for float64-level orthogonality), and its norm after. */
function orthogonalise(u: Float64Array, basis: Float64Array[]): number {
  for (let pass = 0; pass < 2; pass++) {
    for (const q of basis) {
      const c = dot(u, q);
      for (let i = 0; i < u.length; i++) u[i] -= c * q[i]!;
    }
  }
  return Math.sqrt(dot(u, u));
}

/**
 * The orthogonal block-diagonalisation B = P Λ Pᵀ of a float32 skew-symmetric b [d, d], d even
 * (ALGORITHMS.md §6.2), through LAPACK's symmetric eigensolver on BᵀB and a pairing u ↦ Bu/θ.
 *
 * Errors: b not float32 (E_DTYPE); not square, or of odd order (E_SHAPE); not skew-symmetric to
 * 1e-6 of its largest entry, or with NaN/±Inf (E_ARG).
 */
export function skewBlockDiagonalize(b: Tensor): SkewDecomposition {
  const { d, m } = matrixOf(b, 'skewBlockDiagonalize');
  // BᵀB = −B², symmetric positive semi-definite, formed in float64.
  const btb = new Float32Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += m[k * d + i]! * m[k * d + j]!;
      btb[i * d + j] = s;
    }
  }
  const s = tensor(btb, [d, d]);
  const { values, vectors } = eigh(s);
  const lambda = values.toFloat32Array();
  const vecs = vectors.toFloat32Array();
  [s, values, vectors].forEach((t) => t.dispose());
  const maxTheta = Math.sqrt(Math.max(0, lambda[d - 1]!));
  const columns: Float64Array[] = [];
  const theta: number[] = [];
  const nullVectors: Float64Array[] = [];
  // Largest eigenvalue first; a vector already spanned (the partner of an earlier one) drops out.
  for (let j = d - 1; j >= 0 && columns.length + nullVectors.length < d; j--) {
    const u = Float64Array.from({ length: d }, (_, i) => vecs[i * d + j]!);
    const unorm = orthogonalise(u, [...columns, ...nullVectors]);
    if (unorm < 0.5) continue;
    u.forEach((x, i, a) => (a[i] = x / unorm));
    const w = apply64(m, u, d);
    const t = Math.sqrt(dot(w, w));
    if (t <= 1e-6 * maxTheta || t === 0) {
      nullVectors.push(u);
      continue;
    }
    const norm = orthogonalise(w, [...columns, u]);
    w.forEach((x, i, a) => (a[i] = x / norm));
    columns.push(u, w);
    theta.push(dot(w, apply64(m, u, d)));
  }
  // B's null space (even-dimensional): its vectors paired in order, θ = 0.
  for (let k = 0; k + 1 < nullVectors.length; k += 2) {
    columns.push(nullVectors[k]!, nullVectors[k + 1]!);
    theta.push(0);
  }
  if (columns.length !== d) throw new ArgumentError(`skewBlockDiagonalize: found ${columns.length} of ${d} basis vectors (B too ill-conditioned)`);
  const p = new Float64Array(d * d);
  columns.forEach((c, j) => c.forEach((x, i) => (p[i * d + j] = x)));
  return { d, p, theta: Float64Array.from(theta) };
}

/**
 * The general RoPE R_n = exp(nB) of a float32 skew-symmetric generator b [d, d] (d even), by its
 * orthogonal block-diagonalisation (skewBlockDiagonalize): exp(nB) itself, its application to
 * q/k rows, and the conversion of W_q and W_k that makes standard RoPE compute the same scores.
 * Errors as skewBlockDiagonalize.
 */
export function generalRope(b: Tensor): GeneralRope {
  const dec = skewBlockDiagonalize(b);
  const { d, p, theta } = dec;
  const pf = Float32Array.from(p);
  const ptf = Float32Array.from({ length: d * d }, (_, k) => p[(k % d) * d + Math.floor(k / d)]!);
  const frequencies = (device = 'cpu') => tensor(Float32Array.from(theta), [d / 2], { device });
  return {
    ...dec,
    expm(n: number): Float64Array {
      if (!Number.isFinite(n)) throw new ArgumentError(`generalRope.expm: n must be finite, got ${n}`);
      // P exp(nΛ): columns 2i, 2i+1 mixed by the block's rotation, then times Pᵀ.
      const pe = new Float64Array(d * d);
      for (let i = 0; i < d / 2; i++) {
        const c = Math.cos(n * theta[i]!);
        const s = Math.sin(n * theta[i]!);
        for (let r = 0; r < d; r++) {
          const a = p[r * d + 2 * i]!;
          const bb = p[r * d + 2 * i + 1]!;
          pe[r * d + 2 * i] = a * c + bb * s;
          pe[r * d + 2 * i + 1] = -a * s + bb * c;
        }
      }
      const out = new Float64Array(d * d);
      for (let r = 0; r < d; r++) {
        for (let col = 0; col < d; col++) {
          let acc = 0;
          for (let k = 0; k < d; k++) acc += pe[r * d + k]! * p[col * d + k]!;
          out[r * d + col] = acc;
        }
      }
      return out;
    },
    apply(x: Tensor, options: { positions?: Tensor | null; offset?: number } = {}): Tensor {
      assertTensor(x, 'generalRope.apply', 'x');
      if (x.rank < 2 || x.shape[x.rank - 1] !== d) throw new ShapeError(`generalRope.apply: x must be [..., T, ${d}], got ${x.describe()}`);
      const pm = tensor(pf, [d, d], { device: x.device });
      const ptm = tensor(ptf, [d, d], { device: x.device });
      const freq = frequencies(x.device);
      const y = matmul(rope(matmul(x, pm), { positions: options.positions ?? null, offset: options.offset ?? 0, frequencies: freq }), ptm);
      return y;
    },
    convertProjection(w: Tensor): Tensor {
      assertTensor(w, 'generalRope.convertProjection', 'w');
      if (w.rank < 1 || w.rank > 2 || w.shape[0] !== d) throw new ShapeError(`generalRope.convertProjection: w must be [${d}, in] or [${d}], got ${w.describe()}`);
      const ptm = tensor(ptf, [d, d], { device: w.device });
      return w.rank === 1 ? matmul(ptm, w.reshape([d, 1])).reshape([d]) : matmul(ptm, w);
    },
    frequencies,
  };
}
