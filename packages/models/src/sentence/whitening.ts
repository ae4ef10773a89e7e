/**
 * BERT-whitening with its two hyper-parameters (ALGORITHMS.md §3.1): from sentence vectors x
 * [N, D], μ = mean(x), Σ_β = (x − βμ)ᵀ(x − βμ)/N = U Λ Uᵀ (eigenvalues descending), and the
 * transform x̃ = (x − βμ) · U · Λ^(−γ/2), first k columns: one matrix product with a bias,
 * kernel = U Λ^(−γ/2)[:, :k] and bias = −βμ · kernel. β = γ = 1 is the original whitening
 * (transformed covariance I); β = γ = 0 a rotation onto the principal directions of the
 * uncentred second moment.
 *
 * Rank: directions whose eigenvalue is numerical noise carry no signal, and Λ^(−γ/2) would blow
 * them up, so k may not exceed the numerical rank of Σ_β: the number of eigenvalues above
 * D · ε₃₂ · λ_max (ε₃₂ = 2⁻²³, float32's epsilon: Σ_β is held in float32; numpy's matrix_rank
 * rule). A larger k is E_ARG naming the rank; without k the transform keeps exactly the rank.
 */
import { ArgumentError, DTypeError, FormatError, ShapeError, io, linalg, matmul, slice, tensor, type Tensor } from '@kexue/core-cuda';

/** The hyper-parameters of a fit. */
export interface WhiteningOptions {
  /** Where Σ is centred, as a multiple of the mean: 1 (default) centres at μ, 0 not at all. */
  beta?: number;
  /** How far Λ is equalised: Λ^(−γ/2); 1 (default) whitens fully, 0 only rotates. */
  gamma?: number;
  /** Dimensions kept (1..rank of Σ_β); default the rank (D for a full-rank Σ_β). */
  k?: number;
  /** The pooling the vectors came from, recorded in the saved file ('first-last-avg', …). */
  pooling?: string;
}

/** float32's machine epsilon: the relative noise of a float32 covariance. */
const EPS32 = 2 ** -23;

/** The numerical rank of a symmetric PSD matrix of size d from its eigenvalues (module comment). */
export function numericalRank(eigenvalues: ArrayLike<number>, d: number): number {
  let top = 0;
  for (let i = 0; i < eigenvalues.length; i++) top = Math.max(top, eigenvalues[i]!);
  if (top <= 0) return 0;
  const tol = top * d * EPS32;
  let rank = 0;
  for (let i = 0; i < eigenvalues.length; i++) if (eigenvalues[i]! > tol) rank++;
  return rank;
}

function finite(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ArgumentError(`Whitening: ${name} must be a finite number, got ${String(v)}`);
  return v;
}

/** A fitted (or loaded) whitening transform: `apply` maps vectors [N, D] to [N, k]. */
export class Whitening {
  /** U Λ^(−γ/2), first k columns: [D, k] float32. */
  readonly kernel: Tensor;
  /** −βμ · kernel: [k] float32. */
  readonly bias: Tensor;
  readonly beta: number;
  readonly gamma: number;
  readonly pooling: string | null;
  /** The numerical rank of Σ_β the fit found (module comment). */
  readonly rank: number;

  constructor(kernel: Tensor, bias: Tensor, params: { beta: number; gamma: number; rank: number; pooling?: string | null }) {
    if (kernel.dtype !== 'float32' || kernel.rank !== 2) throw new ShapeError(`Whitening: kernel must be float32 [D, k], got ${kernel.describe()}`);
    if (bias.dtype !== 'float32' || bias.rank !== 1 || bias.shape[0] !== kernel.shape[1]) {
      throw new ShapeError(`Whitening: bias must be float32 [${kernel.shape[1]}], got ${bias.describe()}`);
    }
    this.kernel = kernel;
    this.bias = bias;
    this.beta = finite('beta', params.beta);
    this.gamma = finite('gamma', params.gamma);
    this.rank = params.rank;
    this.pooling = params.pooling ?? null;
  }

  /** The dimension D of the vectors it takes. */
  get inputDimension(): number {
    return this.kernel.shape[0]!;
  }

  /** The dimensions k it keeps. */
  get k(): number {
    return this.kernel.shape[1]!;
  }

  /**
   * Fits the transform on vectors [N, D] (float32): Σ_β by kx.linalg.covariance, its
   * eigendecomposition by kx.linalg.eigh (float64 inside), then kernel and bias in float64,
   * stored as float32 on the vectors' device. E_ARG for β or γ not finite, k not an integer in
   * 1..D, or k above the numerical rank of Σ_β (the message names the rank).
   */
  static fit(vectors: Tensor, options: WhiteningOptions = {}): Whitening {
    if (vectors.dtype !== 'float32') throw new DTypeError(`Whitening.fit: vectors must be float32, got ${vectors.describe()}`);
    if (vectors.rank !== 2 || vectors.shape[0] === 0) throw new ShapeError(`Whitening.fit: vectors must be [N, D] with N >= 1, got ${vectors.describe()}`);
    const beta = finite('beta', options.beta ?? 1);
    const gamma = finite('gamma', options.gamma ?? 1);
    const D = vectors.shape[1]!;
    const { mean, cov } = linalg.covariance(vectors, { beta });
    let values: Float32Array;
    let u: Float32Array;
    let mu: Float32Array;
    try {
      const eig = linalg.eigh(cov);
      try {
        values = eig.values.toFloat32Array();
        u = eig.vectors.toFloat32Array();
      } finally {
        eig.values.dispose();
        eig.vectors.dispose();
      }
      mu = mean.toFloat32Array();
    } finally {
      mean.dispose();
      cov.dispose();
    }
    const rank = numericalRank(values, D);
    const k = options.k ?? rank;
    if (!Number.isSafeInteger(k) || k < 1 || k > D) throw new ArgumentError(`Whitening.fit: k must be an integer in 1..${D} (the vectors' dimension), got ${String(k)}`);
    if (k > rank) {
      throw new ArgumentError(
        `Whitening.fit: k = ${k} exceeds the numerical rank ${rank} of the covariance (β = ${beta}) of ${vectors.shape[0]} vectors of dimension ${D}: ` +
          `the other directions are noise that Λ^(−γ/2) would blow up; use k <= ${rank} or fit on more vectors`,
      );
    }
    // eigh's eigenvalues ascend: column j of the kernel is eigenvector D−1−j
    const kernel = new Float64Array(D * k);
    for (let j = 0; j < k; j++) {
      const col = D - 1 - j;
      const scale = gamma === 0 ? 1 : values[col]! ** (-gamma / 2);
      for (let d = 0; d < D; d++) kernel[d * k + j] = u[d * D + col]! * scale;
    }
    const bias = new Float64Array(k);
    for (let j = 0; j < k; j++) {
      let dot = 0;
      for (let d = 0; d < D; d++) dot += mu[d]! * kernel[d * k + j]!;
      bias[j] = -beta * dot;
    }
    const device = vectors.device;
    return new Whitening(tensor(Float32Array.from(kernel), [D, k], { device }), tensor(Float32Array.from(bias), [k], { device }), {
      beta,
      gamma,
      rank,
      pooling: options.pooling ?? null,
    });
  }

  /**
   * The same transform keeping its first k dimensions (the k largest eigenvalues: the columns are
   * in that order), with tensors of its own. E_ARG for k not in 1..this.k.
   */
  truncate(k: number): Whitening {
    if (!Number.isSafeInteger(k) || k < 1 || k > this.k) {
      throw new ArgumentError(`Whitening.truncate: k must be an integer in 1..${this.k} (the dimensions this transform keeps; the rank of Σ_β is ${this.rank}), got ${String(k)}`);
    }
    const D = this.inputDimension;
    return new Whitening(slice(this.kernel, [0, 0], [D, k]), slice(this.bias, [0], [k]), this);
  }

  /** x̃ = vectors · kernel + bias, one fused product: [N, D] → [N, k] (E_SHAPE for another D). */
  apply(vectors: Tensor): Tensor {
    if (vectors.rank !== 2 || vectors.shape[1] !== this.inputDimension) {
      throw new ShapeError(`Whitening.apply: vectors must be [N, ${this.inputDimension}], got ${vectors.describe()}`);
    }
    return matmul(vectors, this.kernel, { bias: this.bias });
  }

  /** Saves it as safetensors: tensors `kernel` and `bias`; metadata beta, gamma, k, rank and pooling. */
  async save(file: string): Promise<void> {
    const metadata: Record<string, string> = { beta: String(this.beta), gamma: String(this.gamma), k: String(this.k), rank: String(this.rank) };
    if (this.pooling !== null) metadata.pooling = this.pooling;
    await io.saveSafetensors(file, { kernel: this.kernel, bias: this.bias }, metadata);
  }

  /** Reads a transform `save` wrote (E_IO unreadable, E_FORMAT not such a file). */
  static load(file: string, options: { device?: string } = {}): Whitening {
    const { tensors, metadata } = io.readSafetensors(file, options);
    const { kernel, bias } = tensors;
    const number = (key: string): number => {
      const v = metadata[key] === undefined ? NaN : Number(metadata[key]);
      if (!Number.isFinite(v)) throw new FormatError(`${file} is not a whitening transform: metadata "${key}" is ${JSON.stringify(metadata[key] ?? null)}`);
      return v;
    };
    try {
      if (!kernel || !bias || Object.keys(tensors).length !== 2) throw new FormatError(`${file} is not a whitening transform: it must hold exactly the tensors kernel and bias`);
      const k = number('k');
      if (kernel.rank !== 2 || kernel.shape[1] !== k) throw new FormatError(`${file}: kernel is ${kernel.describe()}, not [D, ${k}] (metadata k)`);
      return new Whitening(kernel, bias, { beta: number('beta'), gamma: number('gamma'), rank: number('rank'), pooling: metadata.pooling ?? null });
    } catch (err) {
      for (const t of Object.values(tensors)) t.dispose();
      throw err instanceof ShapeError ? new FormatError(`${file}: ${err.message}`) : err;
    }
  }

  dispose(): void {
    this.kernel.dispose();
    this.bias.dispose();
  }
}
