/** matmul: batched matrix products with transpose flags (OpenBLAS sgemm on CPU). */
import { DTypeError, ShapeError } from '../errors.js';
import { runKernel1 } from '../kernel.js';
import { broadcastShapes, fmtShape } from '../shape.js';
import { registerGradient } from '../tape.js';
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
  const bias = opts.bias ?? null;
  if (bias !== null) {
    assertTensor(bias, 'matmul', 'bias');
    const n = out[out.length - 1]!;
    if (bias.dtype !== a.dtype || bias.rank !== 1 || bias.shape[0] !== n) {
      throw new ShapeError(`matmul: bias must be a ${a.dtype} vector [${n}] (one value per output column), got ${bias.describe()}`);
    }
  }
  return runKernel1('matmul', [a, b, bias], { transA, transB });
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
