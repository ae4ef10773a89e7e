/**
 * Softmax cross-entropy with an ignore index (PyTorch's F.cross_entropy with reduction 'mean'),
 * fused: one native pass computes the mean loss and, when a gradient will be needed, d logits.
 */
import { ArgumentError, ShapeError } from '../errors.js';
import { runKernel, runKernel1 } from '../kernel.js';
import { activeTape, registerGradient } from '../tape.js';
import { Tensor } from '../tensor.js';
import { assertDTypeOf, assertFloat, assertTensor, optionsOf } from './check.js';

export interface CrossEntropyOptions {
  /** Rows whose label equals this are left out of the loss and the mean. Default −100 (PyTorch's). */
  ignoreIndex?: number;
}

/**
 * Mean softmax cross-entropy of logits [N, C] (float32/float16/bfloat16) against int32 labels [N],
 * over the rows whose label is not ignoreIndex. Returns a float32 scalar (shape []) for every
 * logits dtype: losses are accumulated in float32 (mixed-precision policy). When every row is
 * ignored (or N = 0) the loss is NaN, as PyTorch. A label outside [0, C) that is not ignoreIndex
 * → E_ARG (checked natively; the message names the row and the value).
 */
export function crossEntropy(logits: Tensor, labels: Tensor, options?: CrossEntropyOptions): Tensor {
  assertTensor(logits, 'crossEntropy', 'logits');
  assertTensor(labels, 'crossEntropy', 'labels');
  assertFloat(logits, 'crossEntropy', 'logits');
  assertDTypeOf(labels, 'int32', 'crossEntropy', 'labels');
  if (logits.rank !== 2) throw new ShapeError(`crossEntropy: logits must be [N, C], got ${logits.describe()}`);
  if (labels.rank !== 1 || labels.shape[0] !== logits.shape[0]) {
    throw new ShapeError(`crossEntropy: labels ${labels.describe()} do not match logits ${logits.describe()} (expected [${logits.shape[0]}])`);
  }
  const ignoreIndex = optionsOf(options, 'crossEntropy').ignoreIndex ?? -100;
  if (!Number.isInteger(ignoreIndex)) throw new ArgumentError(`crossEntropy: ignoreIndex must be an integer, got ${ignoreIndex}`);
  // While a tape records this call the forward also returns d logits, computed from its own
  // exponentials for the dloss the backward pass starts from (the tape's outputGradient): a training
  // step then reads the logits once instead of twice.
  const tape = activeTape();
  const dloss = tape?.isTracked(logits) ? tape.outputGradient : undefined;
  return runKernel('cross_entropy', [logits, labels], { ignoreIndex, dloss })[0]!;
}

registerGradient('cross_entropy', ([dloss], { inputs: [logits, labels], outputs: [, dlogits], attrs }) => {
  if (!dloss) return [null, null];
  // The forward's gradient is exact when the loss reaches the backward pass's start unchanged (used as
  // is, or through sums); any other dloss (a weighted or averaged loss) recomputes.
  if (dlogits && dloss === activeTape()?.seed) return [dlogits, null];
  return [runKernel1('cross_entropy_backward', [logits!, labels!, dloss], { ignoreIndex: attrs.ignoreIndex }), null];
});
