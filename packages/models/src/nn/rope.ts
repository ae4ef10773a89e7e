/**
 * RoPE in the model layers: `applyRope` over the fused kx.rope op (so q and k of attention and
 * GlobalPointer rotate the same way), and `convertRopeCheckpoint`, which moves a checkpoint's
 * W_q and W_k between the interleaved layout (bert4keras, RoFormer) and the rotate-half layout
 * (GPT-NeoX, LLaMA) so that the converted model computes the same attention scores.
 */
import { ArgumentError, embedding, reshape, rope, ropeLayoutPermutation, tensor, type RopeLayout, type RopeOptions, type Tensor } from '@kexue/core-cuda';

/** The kx.rope options a layer passes besides positions: layout, base, rotary dim, offset, scaling. */
export type LayerRopeOptions = Omit<RopeOptions, 'positions' | 'inverse' | 'frequencies'>;

/**
 * x [B, H, T, d] (or [B, T, d]) with the pairs of its last axis rotated by their positions along
 * the second-to-last axis: 0 … T−1 (plus `options.offset`) unless `positions` are given. Default
 * layout interleaved, θ_i = 10000^(−2i/d).
 */
export function applyRope(x: Tensor, positions?: Tensor | null, options: LayerRopeOptions = {}): Tensor {
  return rope(x, { layout: 'interleaved', ...options, positions: positions ?? null });
}

export interface RopeConversionOptions {
  /** The checkpoint's layout. */
  from: RopeLayout;
  /** The layout to convert to. */
  to: RopeLayout;
  /** Channels per head (the rows of W_q and W_k come in heads of this many). */
  headSize: number;
  /** The rotated channels of each head (the rest are left in place). Default headSize. */
  rotaryDim?: number;
  /**
   * Which entries are rotated projections (weights [H·d, in] and biases [H·d]). Default the query
   * and key of HF BERT/RoFormer names: `...attention.self.query.weight`, `...key.bias`, ...
   */
  match?: RegExp;
}

const QUERY_KEY = /(^|\.)attention\.self\.(query|key)\.(weight|bias)$/;

/**
 * A checkpoint whose rotated projections have their output rows permuted within every head so that
 * RoPE in layout `to` gives the scores RoPE in layout `from` gave: the permutation P of
 * ropeLayoutPermutation is a fixed reordering of channels, rope_rh(P q) = P rope_il(q), and
 * ⟨P a, P b⟩ = ⟨a, b⟩, so the attention scores, and the model's outputs, are unchanged. Entries that
 * do not match are returned as they are (the same tensors); matched ones are new tensors the caller
 * owns. E_ARG for a matched entry whose first axis is not a multiple of headSize, or bad sizes.
 */
export function convertRopeCheckpoint(weights: Record<string, Tensor>, options: RopeConversionOptions): Record<string, Tensor> {
  const { from, to, headSize, match = QUERY_KEY } = options;
  for (const layout of [from, to]) {
    if (layout !== 'interleaved' && layout !== 'rotate-half') throw new ArgumentError(`convertRopeCheckpoint: unknown layout ${JSON.stringify(layout)}`);
  }
  const perm = ropeLayoutPermutation(headSize, options.rotaryDim ?? headSize);
  // perm maps rotate-half channel j to the interleaved channel it comes from; the other way is its inverse.
  const within = from === 'interleaved' ? perm : perm.map((_, j) => perm.indexOf(j));
  const out: Record<string, Tensor> = {};
  for (const [name, w] of Object.entries(weights)) {
    if (from === to || !match.test(name)) {
      out[name] = w;
      continue;
    }
    const rows = w.shape[0] ?? 0;
    if (w.rank < 1 || rows % headSize !== 0) throw new ArgumentError(`convertRopeCheckpoint: ${name} ${w.describe()} does not hold heads of ${headSize} rows`);
    const order = Int32Array.from({ length: rows }, (_, r) => r - (r % headSize) + within[r % headSize]!);
    const ids = tensor(order, [rows], { device: w.device });
    const rest = w.shape.slice(1);
    const inner = rest.reduce((a, b) => a * b, 1);
    out[name] = reshape(embedding(ids, reshape(w, [rows, inner])), w.shape);
    ids.dispose();
  }
  return out;
}
