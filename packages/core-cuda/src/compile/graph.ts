/**
 * The traced program's IR (FUSION.md §2): a flat SSA list of nodes in the order they ran, each an op
 * of native/core/ops.def with its input values, attributes and output values (shapes and dtypes as
 * the traced run made them), and a kind that says how fusion may treat it.
 */
import type { DType } from '../dtype.js';
import type { Attrs } from '../tape.js';

/**
 * elementwise: one output element from the same element of each input (broadcasting);
 * broadcast: an input repeated along axes; view: the same elements under another index map;
 * reduce: sums and maxima over axes; out-fusable: products that could take an epilogue;
 * opaque: everything else (rows, gathers, in-place updates).
 */
export type NodeKind = 'elementwise' | 'broadcast' | 'view' | 'reduce' | 'out-fusable' | 'opaque';

/**
 * Where a value comes from: a tensor argument (`index` among the flattened tensor arguments), a
 * tensor captured from outside the function (`index` among the captures: read as it is at each
 * replay), a constant made inside it without an op (`index` among the constants: fixed at trace
 * time), or output `output` of node `index`.
 */
export type ValueOrigin = 'arg' | 'capture' | 'const' | 'node';

export interface Value {
  id: number;
  origin: ValueOrigin;
  index: number;
  output: number;
  shape: readonly number[];
  dtype: DType;
  device: string;
}

export interface TraceNode {
  /** Position in the trace (the order the ops ran, a topological order). */
  id: number;
  op: string;
  /** Value ids; null for an absent optional input. */
  inputs: (number | null)[];
  attrs: Attrs;
  outputs: number[];
  kind: NodeKind;
  /** The op updates some of its inputs in place (an optimizer update): never dropped or moved across. */
  inPlace: boolean;
  /** Its attributes are recomputed at every replay (dynamicAttrs): it stays a step of its own. */
  dynamic: boolean;
  /** Traced in a backward pass (a gradient tape replaying): the profiler's row says so. */
  backward: boolean;
}

const KINDS: Record<string, NodeKind> = {
  add: 'elementwise',
  sub: 'elementwise',
  mul: 'elementwise',
  div: 'elementwise',
  where: 'elementwise',
  unary: 'elementwise',
  unary_backward: 'elementwise',
  cast: 'elementwise',
  broadcast_to: 'broadcast',
  reshape: 'view',
  permute: 'view',
  slice: 'view',
  sum: 'reduce',
  mean: 'reduce',
  max: 'reduce',
  matmul: 'out-fusable',
  matmul_packed: 'out-fusable',
  attention: 'out-fusable',
};

/** The kind of a native op. */
export function kindOf(op: string): NodeKind {
  return KINDS[op] ?? 'opaque';
}

/** The size of a shape. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
