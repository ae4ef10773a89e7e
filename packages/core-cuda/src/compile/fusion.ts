/**
 * Fusion, FUSION.md §3 rules (1), (2), (3), (5) and budget (7): chains of elementwise and broadcast
 * ops on any one device become groups that run as one pass (on CUDA a group needs a tensor input,
 * whose device it runs on), a reduction may take its elementwise producers as a prologue and its
 * elementwise consumers as an epilogue, and sibling groups merge.
 *
 * Groups grow from a sink (the last op of a chain, walking the trace backwards) up through its
 * producers. The group runs at its sink's place, so a producer joins when its value is read in the
 * group through a broadcast to the group's iteration shape, every op outside the group that reads it
 * comes after the sink (it then becomes an extra output of the group, as does a result of the
 * function: a value of the group's shape and dtype written by the group instead of leaving the
 * producer out), no in-place update runs between it and the sink (nothing moves across one), and
 * the group keeps at most 16 tensor inputs (one-element constants are immediates and do not count)
 * and 8 outputs.
 *
 * A reduction (sum, mean, max over the innermost axes, all of them for a scalar) joins as the sink,
 * or as the producer of members of its output's shape (its epilogue); its own producers then join
 * over its input's shape (its prologue). A value is read in one part only: the epilogue cannot read
 * the prologue's registers. A group holds one reduction.
 *
 * Then siblings merge: two groups without a reduction over the same shape and dtype that share an
 * input, where neither depends on the other through an op outside them, become one (it runs at the
 * later one's place; the same rules hold). An optimizer's θ, m, v updates become one group with
 * three outputs.
 *
 * A group of fewer than 3 ops stays eager (an interpreter loses to the eager kernels on one or two
 * ops), unless it is a reduction with a prologue (sum(g·g) never stores the product).
 */
import { isFloating } from '../dtype.js';
import type { TraceNode, Value } from './graph.js';

export const MAX_GROUP_INPUTS = 16;
export const MAX_GROUP_OUTPUTS = 8;
export const MIN_GROUP_OPS = 3;

/** A group's reduction: each element of `shape` reduces `rows` consecutive elements of the group's shape. */
export interface GroupReduce {
  /** The reduce node. */
  node: number;
  op: 'sum' | 'mean' | 'max';
  rows: number;
  /** The reduction's output shape: the epilogue's iteration shape. */
  shape: readonly number[];
}

export interface FusionGroup {
  /** Member node ids in trace order; the group runs at the last one's place. */
  nodes: number[];
  /** Tensor inputs (value ids) in the order the group first reads them. */
  inputs: number[];
  /** One-element constants read as immediates: value id → value. */
  imms: Map<number, number>;
  /** The values the group writes (results, and values read outside it), in trace order. */
  outputs: number[];
  /** The iteration shape (the prologue's, with a reduction). */
  shape: readonly number[];
  dtype: string;
  reduce?: GroupReduce;
  /** Members computed over the reduction's shape after it, in trace order (empty without one). */
  epilogue: number[];
}

const ELEMENTWISE = new Set(['add', 'sub', 'mul', 'div', 'where', 'unary', 'unary_backward']);
const REDUCE_OPS = new Set(['sum', 'mean', 'max']);

/**
 * Whether a node computes elementwise (or broadcasts) in a floating dtype (masks broadcast too), on
 * any device: an op's inputs share its output's device, so a group's members and inputs do too.
 */
function fusible(n: TraceNode, values: readonly Value[]): boolean {
  if (n.outputs.length !== 1 || n.dynamic) return false;
  const out = values[n.outputs[0]!]!;
  if (ELEMENTWISE.has(n.op)) return isFloating(out.dtype);
  return n.op === 'broadcast_to' && (isFloating(out.dtype) || out.dtype === 'uint8');
}

/**
 * A reduce node's reduction when a group can run it: a floating sum, mean or max whose reduced
 * axes are the innermost ones (size-1 axes aside); otherwise undefined (it stays an eager op).
 */
function reductionOf(n: TraceNode, values: readonly Value[]): GroupReduce | undefined {
  if (!REDUCE_OPS.has(n.op) || n.inputs[0] == null) return undefined;
  const x = values[n.inputs[0]]!;
  const y = values[n.outputs[0]!]!;
  if (!isFloating(x.dtype)) return undefined;
  const axes = (n.attrs.axes as number[] | undefined) ?? [];
  const reduced = x.shape.map((_, a) => axes.length === 0 || axes.includes(a));
  let rows = 1;
  let inner = true; // still among the innermost reduced axes, walking outwards
  for (let a = x.shape.length - 1; a >= 0; a--) {
    if (x.shape[a] === 1) continue;
    if (reduced[a] && !inner) return undefined;
    if (reduced[a]) rows *= x.shape[a]!;
    else inner = false;
  }
  if (n.op === 'max' && rows === 0) return undefined; // (an error eagerly, unless the output is empty)
  return { node: n.id, op: n.op as GroupReduce['op'], rows, shape: y.shape };
}

function broadcastsTo(shape: readonly number[], target: readonly number[]): boolean {
  const off = target.length - shape.length;
  return off >= 0 && shape.every((d, i) => d === 1 || d === target[off + i]);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** The part of a group a member computes in: over the sink's shape, or the reduction's input shape. */
type Part = 'out' | 'in';

/**
 * The groups of a trace's live nodes (in trace order of the place they run). `results`: value ids
 * the function returns; `imm`: a one-element constant's value, or undefined for any other value.
 */
export function planGroups(
  nodes: readonly TraceNode[],
  values: readonly Value[],
  results: ReadonlySet<number>,
  imm: (valueId: number) => number | undefined,
): FusionGroup[] {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const consumers = new Map<number, number[]>();
  for (const n of nodes) for (const v of n.inputs) if (v !== null) consumers.set(v, [...(consumers.get(v) ?? []), n.id]);
  const inPlaceAt = nodes.filter((n) => n.inPlace).map((n) => n.id);
  const imms = new Map<number, number | undefined>();
  const immOf = (v: number): number | undefined => {
    if (!imms.has(v)) imms.set(v, imm(v));
    return imms.get(v);
  };
  const producerOf = (v: number): TraceNode | undefined => {
    const value = values[v]!;
    return value.origin === 'node' ? byId.get(value.index) : undefined;
  };
  // The tensor inputs of a set of members, in first-read order.
  const inputsOf = (members: ReadonlySet<number>): number[] => {
    const inputs: number[] = [];
    for (const id of [...members].sort((a, b) => a - b)) {
      for (const v of byId.get(id)!.inputs) {
        if (v === null || immOf(v) !== undefined || inputs.includes(v)) continue;
        const p = producerOf(v);
        if (p && members.has(p.id)) continue;
        inputs.push(v);
      }
    }
    return inputs;
  };
  // A member's value is written by the group when it is a result or read outside.
  const isOutput = (v: number, members: ReadonlySet<number>): boolean =>
    results.has(v) || (consumers.get(v) ?? []).some((c) => !members.has(c));
  const outputsOf = (members: ReadonlySet<number>): number[] =>
    [...members].sort((a, b) => a - b).map((id) => byId.get(id)!.outputs[0]!).filter((v) => isOutput(v, members));
  // Whether members may run at `at`: each value they write is read outside only after it, no
  // in-place update lies between them and it, and the budgets hold.
  const canRunAt = (members: ReadonlySet<number>, at: number): boolean => {
    const first = Math.min(...members);
    if (inPlaceAt.some((i) => i > first && i < at)) return false;
    for (const id of members) {
      if ((consumers.get(byId.get(id)!.outputs[0]!) ?? []).some((c) => !members.has(c) && c <= at)) return false;
    }
    return inputsOf(members).length <= MAX_GROUP_INPUTS && outputsOf(members).length <= MAX_GROUP_OUTPUTS;
  };

  const assigned = new Set<number>();
  const groups: FusionGroup[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const sink = nodes[i]!;
    if (assigned.has(sink.id)) continue;
    let reduce = reductionOf(sink, values);
    if (!reduce && (sink.op === 'broadcast_to' || !fusible(sink, values))) continue;
    const out = values[sink.outputs[0]!]!;
    const outShape = out.shape;
    const part = new Map<number, Part>([[sink.id, 'out']]);
    const inShape = () => values[byId.get(reduce!.node)!.inputs[0]!]!.shape;
    // The part in which a member reads its inputs (a reduction reads its input in the prologue).
    const readsIn = (id: number): Part => (id === reduce?.node ? 'in' : part.get(id)!);
    const canJoin = (p: TraceNode, where: Part): boolean => {
      if (assigned.has(p.id) || part.has(p.id)) return false;
      const v = p.outputs[0]!;
      const value = values[v]!;
      const asReduce = where === 'out' && !reduce ? reductionOf(p, values) : undefined;
      if (asReduce ? !sameShape(value.shape, outShape) : !fusible(p, values)) return false;
      const shape = where === 'out' ? outShape : inShape();
      if (!broadcastsTo(value.shape, shape)) return false;
      const inside = (consumers.get(v) ?? []).filter((c) => part.has(c));
      if (!inside.every((c) => readsIn(c) === where)) return false;
      const outside = results.has(v) || inside.length < (consumers.get(v) ?? []).length;
      if (outside && (p.op === 'broadcast_to' || !sameShape(value.shape, shape) || value.dtype !== out.dtype)) return false;
      return canRunAt(new Set([...part.keys(), p.id]), sink.id);
    };
    for (let grown = true; grown; ) {
      grown = false;
      for (const id of [...part.keys()]) {
        const where = readsIn(id);
        for (const v of byId.get(id)!.inputs) {
          const p = v === null ? undefined : producerOf(v);
          if (!p || !canJoin(p, where)) continue;
          if (where === 'out' && !fusible(p, values)) reduce = reductionOf(p, values);
          part.set(p.id, where);
          grown = true;
        }
      }
    }
    const members = new Set(part.keys());
    const ops = (where: Part) => [...part].filter(([id, w]) => w === where && byId.get(id)!.op !== 'broadcast_to').length;
    if (ops('in') + ops('out') < MIN_GROUP_OPS && !(reduce && ops('in') > 0)) continue;
    const epilogue = reduce ? [...part].filter(([id, w]) => w === 'out' && id !== reduce!.node).map(([id]) => id) : [];
    const group = finish(members, reduce ? inShape() : outShape, out.dtype, reduce, epilogue);
    // A group runs on its inputs' device: one of immediates alone would run on the CPU.
    if (group.inputs.length === 0 && out.device !== 'cpu') continue;
    for (const id of members) assigned.add(id);
    groups.push(group);
  }

  function finish(members: ReadonlySet<number>, shape: readonly number[], dtype: string, reduce?: GroupReduce, epilogue: number[] = []): FusionGroup {
    const nodeIds = [...members].sort((a, b) => a - b);
    const groupImms = new Map<number, number>();
    for (const id of nodeIds) for (const v of byId.get(id)!.inputs) if (v !== null && immOf(v) !== undefined) groupImms.set(v, immOf(v)!);
    return {
      nodes: nodeIds,
      inputs: inputsOf(members),
      imms: groupImms,
      outputs: outputsOf(members),
      shape,
      dtype,
      ...(reduce ? { reduce } : {}),
      epilogue: epilogue.sort((a, b) => a - b),
    };
  }

  return mergeSiblings(groups.reverse(), canRunAt, finish);
}

/**
 * Rule (5): merges groups without a reduction over the same shape and dtype that share an input,
 * when the union can run at the later one's place; repeated until no pair merges.
 */
function mergeSiblings(
  groups: FusionGroup[],
  canRunAt: (members: ReadonlySet<number>, at: number) => boolean,
  finish: (members: ReadonlySet<number>, shape: readonly number[], dtype: string) => FusionGroup,
): FusionGroup[] {
  const at = (g: FusionGroup) => g.nodes[g.nodes.length - 1]!;
  for (let merged = true; merged; ) {
    merged = false;
    for (let a = 0; a < groups.length && !merged; a++) {
      for (let b = a + 1; b < groups.length && !merged; b++) {
        const [x, y] = [groups[a]!, groups[b]!];
        if (x.reduce || y.reduce || x.dtype !== y.dtype || !sameShape(x.shape, y.shape)) continue;
        if (!x.inputs.some((v) => y.inputs.includes(v))) continue;
        const members = new Set([...x.nodes, ...y.nodes]);
        if (!canRunAt(members, Math.max(at(x), at(y)))) continue;
        groups[a] = finish(members, x.shape, x.dtype);
        groups.splice(b, 1);
        merged = true;
      }
    }
  }
  return groups.sort((x, y) => at(x) - at(y));
}
