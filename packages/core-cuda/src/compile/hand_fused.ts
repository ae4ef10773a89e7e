/**
 * FUSION.md's rule (0): compositions that a hand-fused kernel computes in one pass become that
 * kernel before any group is formed, on every device (the fused tier, ops/fused.ts, has CPU and
 * CUDA kernels):
 *
 *   layer_norm(add(x, r), γ, β)  →  add_layer_norm(x, r, γ, β)   (the sum stays available: output 1)
 *   rms_norm(add(x, r), γ)       →  add_rms_norm(x, r, γ)
 *   unary gelu(add(x, bias))     →  bias_gelu(x, bias)            (float32; the sum read by nothing else)
 *
 * The fused node takes the norm's (or the GELU's) place in the trace and the add disappears, so a
 * match needs every other reader of the sum to come after that place and no in-place update between
 * the two (nothing is moved across one). The kernels compute what the compositions compute
 * (ops/fused.ts); bias_gelu does not round x + bias to a half dtype first, hence float32 only there.
 */
import { sameShape } from '../shape.js';
import type { TraceNode, Value } from './graph.js';

/** The nodes with rule (0) applied: each match's add dropped and its consumer replaced by the fused op. */
export function matchHandFused(nodes: readonly TraceNode[], values: readonly Value[], results: ReadonlySet<number>): TraceNode[] {
  const producer = new Map<number, TraceNode>();
  const readers = new Map<number, TraceNode[]>();
  for (const n of nodes) {
    for (const v of n.outputs) producer.set(v, n);
    for (const v of n.inputs) if (v !== null) (readers.get(v) ?? readers.set(v, []).get(v)!).push(n);
  }
  const position = new Map(nodes.map((n, i) => [n.id, i]));
  const dropped = new Set<number>();
  const replaced = new Map<number, TraceNode>();

  // The add that makes `v`, when it can move to `consumer`'s place: no reader of its sum before
  // that place but the consumer, no in-place update in between, neither op's attributes dynamic.
  const movableAdd = (v: number | null, consumer: TraceNode): TraceNode | undefined => {
    const add = v === null ? undefined : producer.get(v);
    if (!add || add.op !== 'add' || add.dynamic || consumer.dynamic || dropped.has(add.id)) return undefined;
    const from = position.get(add.id)!;
    const to = position.get(consumer.id)!;
    if ((readers.get(v!) ?? []).some((r) => r !== consumer && position.get(r.id)! < to)) return undefined;
    for (let i = from + 1; i < to; i++) if (nodes[i]!.inPlace) return undefined;
    return add;
  };

  for (const n of nodes) {
    if (n.op === 'layer_norm' || n.op === 'rms_norm') {
      const add = movableAdd(n.inputs[0]!, n);
      if (!add) continue;
      const [x, r] = add.inputs as [number, number];
      const s = add.outputs[0]!;
      if (!sameShape(values[x]!.shape, values[s]!.shape) || !sameShape(values[r]!.shape, values[s]!.shape)) continue;
      if (values[x]!.dtype !== values[r]!.dtype) continue;
      const [y, ...stats] = n.outputs;
      dropped.add(add.id);
      replaced.set(n.id, {
        ...n,
        op: n.op === 'layer_norm' ? 'add_layer_norm' : 'add_rms_norm',
        inputs: [x, r, ...n.inputs.slice(1)],
        outputs: [y!, s, ...stats],
      });
    } else if (n.op === 'unary' && n.attrs.fn === 'gelu') {
      const s = n.inputs[0]!;
      const add = movableAdd(s, n);
      if (!add || results.has(s) || (readers.get(s) ?? []).length !== 1) continue;
      const last = values[s]!.shape[values[s]!.shape.length - 1];
      const isRow = (v: number) => values[v]!.shape.length === 1 && values[v]!.shape[0] === last;
      const [a, b] = add.inputs as [number, number];
      const [x, bias] = sameShape(values[a]!.shape, values[s]!.shape) && isRow(b) ? [a, b] : sameShape(values[b]!.shape, values[s]!.shape) && isRow(a) ? [b, a] : [];
      if (x === undefined || bias === undefined) continue;
      if (values[x]!.dtype !== 'float32' || values[bias]!.dtype !== 'float32') continue;
      dropped.add(add.id);
      replaced.set(n.id, { ...n, op: 'bias_gelu', inputs: [x, bias], attrs: { approximate: n.attrs.approximate ?? 'none' }, kind: 'opaque' });
    }
  }
  return nodes.filter((n) => !dropped.has(n.id)).map((n) => replaced.get(n.id) ?? n);
}
