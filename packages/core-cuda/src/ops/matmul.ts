/**
 * matmul: batched matrix products with transpose flags (oneDNN on the CPU, cuBLAS on CUDA), and
 * weights packed once for the CPU's inference products (packWeight, matmulPacked).
 */
import { ArgumentError, DeviceError, DTypeError, ShapeError } from '../errors.js';
import { runKernel1 } from '../kernel.js';
import { broadcastShapes, fmtShape } from '../shape.js';
import { activeTape, registerGradient } from '../tape.js';
import { guardTrace, untraced } from '../trace_hook.js';
import { assertTensor, booleanOption, optionsOf } from './check.js';
import { Tensor } from '../tensor.js';
import { sumTo } from './broadcast.js';
import { reshape } from './shape.js';

export interface MatmulOptions {
  /** Use a's last two axes transposed: a is [..., k, m]. Default false. */
  transA?: boolean;
  /** Use b's last two axes transposed: b is [..., n, k]. Default false. */
  transB?: boolean;
  /**
   * A vector [n] (b's dtype) added to every output row: the epilogue of the product (its gradient
   * is dY summed over the rows). Cheaper than a separate add: no extra pass over the output.
   */
  bias?: Tensor;
}

/** The output shape of matmul(a, b, flags); E_SHAPE/E_DTYPE as matmul. */
function matmulShape(a: Tensor, b: Tensor, transA: boolean, transB: boolean): number[] {
  assertTensor(a, 'matmul', 'a');
  assertTensor(b, 'matmul', 'b');
  if (a.dtype !== b.dtype) throw new DTypeError(`matmul: operands must share a dtype, got ${a.describe()} and ${b.describe()}`);
  if (a.rank < 2 || b.rank < 2) {
    throw new ShapeError(
      `matmul: operands need rank >= 2 (1-D operands are not supported: reshape a vector to [1, k] or [k, 1]), got ${a.describe()} and ${b.describe()}`,
    );
  }
  const [ra, ca] = a.shape.slice(-2) as [number, number];
  const [rb, cb] = b.shape.slice(-2) as [number, number];
  const m = transA ? ca : ra;
  const ka = transA ? ra : ca;
  const kb = transB ? cb : rb;
  const n = transB ? rb : cb;
  if (ka !== kb) {
    throw new ShapeError(
      `matmul: inner dimensions differ: ${fmtShape(a.shape)}${transA ? 'ᵀ' : ''} · ${fmtShape(b.shape)}${transB ? 'ᵀ' : ''}`,
    );
  }
  const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2), 'matmul batch dims');
  return [...batch, m, n];
}

/**
 * The matrix product op(a) · op(b), where op transposes the last two axes when its flag is set:
 * a is [..., m, k] ([..., k, m] with transA), b is [..., k, n] ([..., n, k] with transB). Leading
 * batch dims broadcast like NumPy (b may be a plain [k, n] matrix shared by every batch); the
 * result is [...batch, m, n]. Both operands need rank ≥ 2 (1-D vectors are not supported: reshape
 * them) and the same floating dtype. Half dtypes are multiplied in float32 and rounded once.
 * `bias` [n] is added to every row as part of the product (a bias of another dtype or length → E_SHAPE).
 */
export function matmul(a: Tensor, b: Tensor, options?: MatmulOptions): Tensor {
  const opts = optionsOf(options, 'matmul');
  const transA = booleanOption(opts.transA, 'matmul', 'transA');
  const transB = booleanOption(opts.transB, 'matmul', 'transB');
  const out = matmulShape(a, b, transA, transB);
  const bias = checkBias('matmul', opts.bias, a.dtype, out[out.length - 1]!);
  return runKernel1('matmul', [a, b, bias], { transA, transB });
}

/** The bias option of a product with n output columns, checked (null when absent). */
function checkBias(op: string, bias: Tensor | undefined, dtype: string, n: number): Tensor | null {
  if (bias === undefined || bias === null) return null;
  assertTensor(bias, op, 'bias');
  if (bias.dtype !== dtype || bias.rank !== 1 || bias.shape[0] !== n) {
    throw new ShapeError(`${op}: bias must be a ${dtype} vector [${n}] (one value per output column), got ${bias.describe()}`);
  }
  return bias;
}

/**
 * A weight matrix prepared once for inference products: on the CPU a copy in the layout the
 * product kernels read (oneDNN's blocked layout for this CPU), so that products at small batch
 * sizes do not repack the weight on every call (the inference path of Linear layers;
 * docs/performance.md); on CUDA the weight itself, which cuBLAS reads as it is. Made by
 * packWeight. It is a snapshot: an in-place update of its source (an optimizer step) makes it
 * stale, and matmulPacked then refuses it. dispose() frees the packed copy (the source stays the
 * caller's).
 */
export class PackedWeight {
  /** The product's inner size: a's last dim. */
  readonly k: number;
  /** Output columns. */
  readonly n: number;
  readonly source: Tensor;
  /** Whether source is stored [n, k]. */
  readonly transB: boolean;
  /** @internal The packed float32 elements as bytes (CPU), or null (CUDA: the source is used). */
  readonly bytes: Tensor | null;
  readonly #sourceVersion: number;
  #disposed = false;

  /** @internal Made by packWeight. */
  constructor(source: Tensor, transB: boolean, bytes: Tensor | null) {
    this.source = source;
    this.transB = transB;
    this.bytes = bytes;
    [this.k, this.n] = transB ? [source.shape[1]!, source.shape[0]!] : [source.shape[0]!, source.shape[1]!];
    this.#sourceVersion = source.version;
  }

  /** False once the source has been updated in place since packing (or either was disposed). */
  get isCurrent(): boolean {
    return !this.#disposed && !this.source.isDisposed && this.source.version === this.#sourceVersion;
  }

  dispose(): void {
    this.#disposed = true;
    this.bytes?.dispose();
  }
}

/**
 * `w` (a [k, n] matrix, or [n, k] with transB: a Linear layer's [out, in] weight) prepared for
 * matmulPacked. On the CPU half weights are widened: the packed copy is float32, and it is tracked
 * like any tensor (a tidy scope disposes it unless `keep(packed.bytes)`). Not differentiable.
 */
export function packWeight(w: Tensor, options?: { transB?: boolean }): PackedWeight {
  const opts = optionsOf(options, 'packWeight');
  const transB = booleanOption(opts.transB, 'packWeight', 'transB');
  assertTensor(w, 'packWeight', 'w');
  if (activeTape()) throw new ArgumentError('packWeight: packed weights are for inference, not under valueAndGrad');
  if (w.rank !== 2) throw new ShapeError(`packWeight: the weight must be a matrix, got ${w.describe()}`);
  // Packed once: under kx.compile the packing is not part of the program (a replay reads the copy).
  const bytes = w.device === 'cpu' ? untraced(() => runKernel1('matmul_pack', [w], { transB })) : null;
  return new PackedWeight(w, transB, bytes);
}

/**
 * a · W (+ bias) for a [..., k] and a weight prepared by packWeight: [..., n] in a's dtype (half
 * inputs are multiplied in float32 and rounded once), the same values as matmul with the source
 * weight up to float32 summation order. Inference only: E_ARG under a gradient tape, and for a
 * packed weight whose source changed since it was packed.
 */
export function matmulPacked(a: Tensor, w: PackedWeight, options?: { bias?: Tensor }): Tensor {
  const opts = optionsOf(options, 'matmulPacked');
  assertTensor(a, 'matmulPacked', 'a');
  if (!(w instanceof PackedWeight)) throw new ArgumentError('matmulPacked: w must be a PackedWeight (from packWeight)');
  if (activeTape()) throw new ArgumentError('matmulPacked: not differentiable; under valueAndGrad use matmul with the weight itself');
  if (!w.isCurrent) throw new ArgumentError('matmulPacked: the weight changed (or was disposed) since it was packed; pack it again');
  guardTrace(() => w.isCurrent); // a program reading the copy is traced again once it is stale
  if (a.dtype !== w.source.dtype) throw new DTypeError(`matmulPacked: a is ${a.dtype}, the weight ${w.source.dtype}`);
  if (a.device !== w.source.device) throw new DeviceError(`matmulPacked: a is on ${a.device}, the weight on ${w.source.device}`);
  if (a.rank < 1 || a.shape[a.rank - 1] !== w.k) {
    throw new ShapeError(`matmulPacked: a must be [..., ${w.k}] for a [${w.k}, ${w.n}] weight, got ${a.describe()}`);
  }
  const bias = checkBias('matmulPacked', opts.bias, a.dtype, w.n) ?? undefined;
  if (w.bytes) return runKernel1('matmul_packed', [a, w.bytes, bias], { k: w.k, n: w.n });
  const rows = reshape(a, [-1, w.k]);
  return reshape(matmul(rows, w.source, { transB: w.transB, bias }), [...a.shape.slice(0, -1), w.n]);
}

/** dB when b is a plain matrix shared by a batched a without transA: one product over all rows. */
function sharedMatrixGrad(a: Tensor, dy: Tensor, transB: boolean): Tensor {
  const k = a.shape[a.rank - 1]!;
  const n = dy.shape[dy.rank - 1]!;
  // The rows counted, not inferred: reshape cannot infer −1 next to a 0 (k or n = 0).
  const rows = a.size === 0 ? a.shape.slice(0, -1).reduce((x, d) => x * d, 1) : a.size / k;
  const a2 = reshape(a, [rows, k]);
  const dy2 = reshape(dy, [rows, n]);
  return transB ? matmul(dy2, a2, { transA: true }) : matmul(a2, dy2, { transA: true });
}

// Y = op(A)·op(B): d op(A) = dY·op(B)ᵀ and d op(B) = op(A)ᵀ·dY, written for each flag combination
// as one matmul with flags (no transposed copies), then summed over broadcast batch dims.
registerGradient('matmul', ([dy], { inputs: [a, b, bias], attrs }) => {
  if (!dy) return [null, null, null];
  const A = a!;
  const B = b!;
  const ta = attrs.transA === true;
  const tb = attrs.transB === true;
  let da: Tensor;
  if (!ta) da = tb ? matmul(dy, B) : matmul(dy, B, { transB: true });
  else da = tb ? matmul(B, dy, { transA: true, transB: true }) : matmul(B, dy, { transB: true });
  let db: Tensor;
  if (B.rank === 2 && A.rank > 2 && !ta) {
    db = sharedMatrixGrad(A, dy, tb);
  } else if (!tb) {
    db = ta ? matmul(A, dy) : matmul(A, dy, { transA: true });
  } else {
    db = ta ? matmul(dy, A, { transA: true, transB: true }) : matmul(dy, A, { transA: true });
  }
  return [sumTo(da, A.shape), sumTo(db, B.shape), bias ? sumTo(dy, bias.shape) : null];
});
