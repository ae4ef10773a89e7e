/** embedding: rows of a [V, D] table gathered by int32 ids; its gradient is a scatter-add. */
import { isFloating } from '../dtype.js';
import { ArgumentError, DTypeError, ShapeError } from '../errors.js';
import { runKernel1 } from '../kernel.js';
import { registerGradient } from '../tape.js';
import { Tensor } from '../tensor.js';
import { cast } from './cast.js';

/**
 * table[ids]: for int32 ids of any shape [...] and a floating table [V, D], the [..., D] tensor of
 * the rows the ids name. An id outside [0, V) → E_ARG naming the id (checked natively, so the ids
 * are never copied to JS). Non-int32 ids → E_DTYPE. Differentiable in the table: the gradient adds
 * each output row's gradient into its id's row (repeated ids accumulate, deterministically).
 */
export function embedding(ids: Tensor, table: Tensor): Tensor {
  if (!(ids instanceof Tensor)) throw new ArgumentError(`embedding: ids must be a Tensor, got ${typeof ids}`);
  if (!(table instanceof Tensor)) throw new ArgumentError(`embedding: table must be a Tensor, got ${typeof table}`);
  if (ids.dtype !== 'int32') throw new DTypeError(`embedding: ids must be int32, got ${ids.describe()}`);
  if (!isFloating(table.dtype)) {
    throw new DTypeError(`embedding: table must be float32, float16 or bfloat16, got ${table.describe()}`);
  }
  if (table.rank !== 2) throw new ShapeError(`embedding: table must be [V, D], got ${table.describe()}`);
  return runKernel1('embedding', [ids, table]);
}

registerGradient('embedding', ([dy], { inputs: [ids, table] }) => [
  null,
  dy ? runKernel1('embedding_backward', [ids, cast(dy, table!.dtype)], { rows: table!.shape[0]! }) : null,
]);
