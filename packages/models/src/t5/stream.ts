/** T5's residual stream under mixed precision (see residualStream). */
import { add, cast, rmsNorm, type Tensor } from '@kexue/core-cuda';

import type { RMSNorm } from '../nn/layers.js';

/**
 * The residual stream is float32 whatever the compute dtype: under float16 a T5's sums outgrow the
 * format (transformers clamps them; bert4keras trained T5 PEGASUS in float32), so the embedding
 * joins it widened, each sublayer's output is widened before it is added, and each norm reads it
 * in float32 and hands its sublayer the compute dtype (its weight's, under a precision policy).
 * In float32 every cast below returns its input.
 */
export function residualStream(embedded: Tensor): Tensor {
  return cast(embedded, 'float32');
}

/** RMSNorm of the float32 stream x, computed in float32, in the norm weight's dtype. */
export function normed(norm: RMSNorm, x: Tensor): Tensor {
  const w = norm.weight;
  if (w.dtype === x.dtype) return norm.forward(x);
  return cast(rmsNorm(x, cast(w, x.dtype), norm.eps), w.dtype);
}

/** x + h on the float32 stream. */
export function residual(x: Tensor, h: Tensor): Tensor {
  return add(x, cast(h, x.dtype));
}
