/**
 * Sentence vectors from an encoder's outputs (ALGORITHMS.md §3.3): 'cls' (last layer, position 0),
 * 'pooler' (the pooler dense on [CLS] without the tanh), 'last-avg' (masked mean of the last layer)
 * and 'first-last-avg' (½·(masked mean of block 0's output + masked mean of the last block)). The
 * masked means ignore padding and include [CLS] and [SEP].
 */
import { ArgumentError, ShapeError, add, cast, div, mul, reshape, slice, sum, type Tensor } from '@kexue/core-cuda';

import type { EncoderOutput } from '../bert/model.js';

export type PoolingMode = 'cls' | 'pooler' | 'last-avg' | 'first-last-avg';

/** Mean of x [B, T, H] over the positions where mask [B, T] (uint8) is 1; all positions without a mask. */
export function maskedMean(x: Tensor, mask?: Tensor | null): Tensor {
  if (x.rank !== 3) throw new ShapeError(`maskedMean: x must be [B, T, H], got ${x.describe()}`);
  const [B, T] = x.shape as [number, number];
  if (!mask) return div(sum(x, 1), T);
  if (mask.dtype !== 'uint8' || mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== T) {
    throw new ShapeError(`maskedMean: mask must be uint8 [${B}, ${T}], got ${mask.describe()}`);
  }
  const m = reshape(cast(mask, x.dtype), [B, T, 1]);
  return div(sum(mul(x, m), 1), sum(m, 1));
}

/** The sentence vectors [B, H] of a mode. */
export function pool(out: EncoderOutput, mode: PoolingMode, mask?: Tensor | null): Tensor {
  const last = out.lastHiddenState;
  switch (mode) {
    case 'cls': {
      const [B] = last.shape as [number];
      return reshape(slice(last, [0, 0, 0], [B, 1, -1]), [B, -1]);
    }
    case 'pooler':
      if (!out.poolerLinear) throw new ArgumentError("pool: mode 'pooler' needs a model with a pooler");
      return out.poolerLinear;
    case 'last-avg':
      return maskedMean(last, mask);
    case 'first-last-avg': {
      const first = out.hiddenStates[0];
      if (!first) throw new ArgumentError("pool: mode 'first-last-avg' needs the per-layer outputs");
      return div(add(maskedMean(first, mask), maskedMean(last, mask)), 2);
    }
    default:
      throw new ArgumentError(`pool: unknown mode '${String(mode)}' (cls, pooler, last-avg, first-last-avg)`);
  }
}
