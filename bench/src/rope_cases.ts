/**
 * Issue 21's speed cases: linear attention with RoPE in the numerator (φ = elu + 1, causal, the
 * chunked form of @kexue/models' linearAttention) beside the fused causal softmax attention, at
 * T = 512 and 2048, forward + backward (dq, dk, dv). PyTorch runs the same computations
 * (torch_bench.py's linear_attention_rope and the matmul-softmax-matmul attention).
 */
import * as kx from '@kexue/core-cuda';
import { linearAttention } from '@kexue/models';

import type { TimedCase } from './cases.js';
import { rand } from './random.js';

/** Batch, heads and head size of every case (RoFormer-base's head size). */
export const LONG_ATTENTION = { B: 1, H: 4, D: 64, chunk: 64 } as const;

function attentionCase(kind: 'linear-rope' | 'softmax', T: number): TimedCase {
  const { B, H, D, chunk } = LONG_ATTENTION;
  return {
    name: `${kind === 'linear-rope' ? 'linear-attention-rope' : 'causal-attention'}-${T}`,
    what:
      kind === 'linear-rope'
        ? `causal linear attention (elu+1, RoPE in the numerator, chunks of ${chunk}) B=${B}, H=${H}, T=${T}, D=${D}, forward + backward`
        : `causal softmax attention (kx.attention; PyTorch matmul-softmax-matmul) B=${B}, H=${H}, T=${T}, D=${D}, forward + backward`,
    setup() {
      const q = rand([B, H, T, D], 31);
      const k = rand([B, H, T, D], 32);
      const v = rand([B, H, T, D], 33);
      const go = rand([B, H, T, D], 34);
      const attend = (a: kx.Tensor, b: kx.Tensor, c: kx.Tensor) =>
        kind === 'linear-rope' ? linearAttention(a, b, c, { causal: true, chunk, rope: {} }) : kx.attention(a, b, c, { causal: true, scale: 1 / Math.sqrt(D) });
      return {
        run: () => kx.tidy(() => void kx.valueAndGrad(([a, b, c]) => kx.sum(kx.mul(attend(a!, b!, c!), go)), [q, k, v])),
        dispose: () => kx.dispose([q, k, v, go]),
      };
    },
  };
}

export function longAttentionCases(): TimedCase[] {
  return [512, 2048].flatMap((T) => [attentionCase('linear-rope', T), attentionCase('softmax', T)]);
}
