/**
 * attention: fused scaled dot-product attention (one native op, forward and backward), with
 * optional boolean mask, additive bias and causal masking. The CPU kernel never holds the
 * [B, H, Tq, Tk] score matrix: it works per (batch, head, block of queries) with an online softmax
 * and saves the per-row logsumexp, from which the backward recomputes the probabilities.
 */
import { ArgumentError, DTypeError, ShapeError } from '../errors.js';
import { runKernel } from '../kernel.js';
import { fmtShape } from '../shape.js';
import { registerGradient } from '../tape.js';
import { Tensor } from '../tensor.js';
import { assertDTypeOf, assertFloat, optionsOf } from './check.js';

export interface AttentionOptions {
  /**
   * uint8, broadcastable to [B, H, Tq, Tk] (e.g. a padding mask [B, 1, 1, Tk]): 1 = attend,
   * 0 = masked. Masked scores are −∞ by select, so a fully masked row yields zeros.
   */
  mask?: Tensor | null;
  /** Float, broadcastable to [B, H, Tq, Tk] (e.g. a T5 position bias [1, H, Tq, Tk]); added to the scaled scores. */
  bias?: Tensor | null;
  /**
   * Query row i sees keys j ≤ i + (Tk − Tq): aligned to the bottom-right corner when Tq ≠ Tk
   * (flash-attention's convention, what a key/value cache needs). Rows i < Tq − Tk see no key and
   * yield zeros.
   */
  causal?: boolean;
  /** Multiplies q·kᵀ. Default 1/√D. */
  scale?: number;
}

function checkBroadcast(t: Tensor, full: readonly number[], what: string): void {
  if (t.rank > 4) throw new ShapeError(`attention: ${what} ${t.describe()} has rank > 4`);
  const pad = 4 - t.rank;
  t.shape.forEach((d, a) => {
    if (d !== 1 && d !== full[pad + a]) {
      throw new ShapeError(`attention: ${what} ${t.describe()} does not broadcast to ${fmtShape(full)}`);
    }
  });
}

/**
 * softmax(q·kᵀ·scale + bias, masked to −∞ where mask is 0 or the causal rule hides a key) · v.
 *
 * q [B, H, Tq, D], k [B, H, Tk, D], v [B, H, Tk, Dv] (Dv may differ from D), all of one floating
 * dtype; float16/bfloat16 are computed in float32 and the output is in the input dtype. Returns
 * [B, H, Tq, Dv]. Differentiable in q, k, v and bias (the bias gradient has the bias's own shape).
 * Errors: E_SHAPE for ranks other than 4, mismatched dims or a mask/bias that does not broadcast;
 * E_DTYPE for a non-uint8 mask, a non-floating bias, or q/k/v of different or non-floating dtypes.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, options?: AttentionOptions): Tensor {
  const opts = optionsOf(options, 'attention');
  for (const [name, t] of [['q', q], ['k', k], ['v', v]] as const) {
    assertFloat(t, 'attention', name);
    if (t.rank !== 4) throw new ShapeError(`attention: ${name} must have rank 4 [B, H, T, D], got ${t.describe()}`);
  }
  if (k.dtype !== q.dtype || v.dtype !== q.dtype) {
    throw new DTypeError(`attention: q, k, v must share a dtype, got ${q.dtype}, ${k.dtype}, ${v.dtype}`);
  }
  const [B, H, Tq, D] = q.shape as [number, number, number, number];
  const Tk = k.shape[2]!;
  if (k.shape[0] !== B || k.shape[1] !== H || v.shape[0] !== B || v.shape[1] !== H) {
    throw new ShapeError(`attention: batch/head dims differ: q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)}`);
  }
  if (k.shape[3] !== D) throw new ShapeError(`attention: q and k head dims differ: ${fmtShape(q.shape)} vs ${fmtShape(k.shape)}`);
  if (v.shape[2] !== Tk) throw new ShapeError(`attention: k and v lengths differ: ${fmtShape(k.shape)} vs ${fmtShape(v.shape)}`);

  const { mask = null, bias = null, causal = false } = opts;
  const full = [B, H, Tq, Tk];
  if (mask !== null) {
    assertDTypeOf(mask, 'uint8', 'attention', 'mask (1 = attend)');
    checkBroadcast(mask, full, 'mask');
  }
  if (bias !== null) {
    assertFloat(bias, 'attention', 'bias');
    checkBroadcast(bias, full, 'bias');
  }
  if (typeof causal !== 'boolean') throw new ArgumentError(`attention: causal must be a boolean, got ${String(causal)}`);
  const scale = opts.scale ?? (D > 0 ? 1 / Math.sqrt(D) : 1);
  if (typeof scale !== 'number' || !Number.isFinite(scale)) {
    throw new ArgumentError(`attention: scale must be a finite number, got ${String(scale)}`);
  }
  const [out, lse] = runKernel('attention', [q, k, v, mask, bias], { causal, scale });
  // lse is kept by the gradient tape when one records this call (dispose defers until it is done).
  lse!.dispose();
  return out!;
}

// dq, dk, dv, (no gradient for the mask), dbias: the backward recomputes the probabilities from
// q, k and the saved logsumexp; dbias comes back already summed onto the bias's shape.
registerGradient('attention', ([dout], { inputs: [q, k, v, mask, bias], outputs: [out, lse], attrs }) => {
  if (!dout) return [null, null, null, null, null];
  const grads = runKernel('attention_backward', [q!, k!, v!, mask ?? null, bias ?? null, out!, lse!, dout], attrs);
  return [grads[0], grads[1], grads[2], null, bias ? grads[3] : null];
});
