/** embedding: rows of a [V, D] table gathered by int32 ids; its gradient is a scatter-add. */
import { ShapeError } from '../errors.js';
import { runKernel1 } from '../kernel.js';
import { registerGradient } from '../tape.js';
import { Tensor } from '../tensor.js';
import { cast } from './cast.js';
import { assertDTypeOf, assertFloat, assertTensor } from './check.js';

/**
 * table[ids]: for int32 ids of any shape [...] and a floating table [V, D], the [..., D] tensor of
 * the rows the ids name. An id outside [0, V) → E_ARG naming the id (checked natively, so the ids
 * are never copied to JS). Non-int32 ids → E_DTYPE. Differentiable in the table: the gradient adds
 * each output row's gradient into its id's row (repeated ids accumulate, deterministically).
 */
export function embedding(ids: Tensor, table: Tensor): Tensor {
  assertTensor(ids, 'embedding', 'ids');
  assertTensor(table, 'embedding', 'table');
  assertDTypeOf(ids, 'int32', 'embedding', 'ids');
  assertFloat(table, 'embedding', 'table');
  if (table.rank !== 2) throw new ShapeError(`embedding: table must be [V, D], got ${table.describe()}`);
  return runKernel1('embedding', [ids, table]);
}

registerGradient('embedding', ([dy], { inputs: [ids, table] }) => [
  null,
  dy ? runKernel1('embedding_backward', [ids, cast(dy, table!.dtype)], { rows: table!.shape[0]! }) : null,
]);
