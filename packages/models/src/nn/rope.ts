/**
 * RoPE on a [B, H, T, d] (or [B, T, d]) tensor: interleaved pairs (ALGORITHMS.md §6, bert4keras and
 * Hugging Face's RoFormer), θ_i = 10000^(−2i/d), positions 0 … T−1 unless given. A thin wrapper
 * over the fused kx.rope op, so q and k of attention and GlobalPointer rotate the same way.
 */
import { rope, type Tensor } from '@kexue/core-cuda';

/** x with each adjacent pair of its last axis rotated by its position along the second-to-last axis. */
export function applyRope(x: Tensor, positions?: Tensor | null): Tensor {
  return rope(x, { positions: positions ?? null, layout: 'interleaved' });
}
