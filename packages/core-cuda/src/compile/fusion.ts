/**
 * Fusion, FUSION.md §3 rule (1) and budget (7): chains of elementwise and broadcast ops on the CPU
 * become groups that run as one pass. Groups grow from a sink (the last op of a chain, walking the
 * trace backwards) up through its producers; a producer joins when every op that reads it is
 * already in the group and it is not a result of the function (otherwise it is materialised), its
 * shape broadcasts to the group's, no in-place update runs between it and the sink (the group runs
 * at the sink's place and reads its inputs there), and the group keeps at most 16 tensor inputs
 * (one-element constants are immediates and do not count). A group of fewer than 3 ops stays
 * eager: an interpreter loses to the eager kernels on one or two ops.
 */
import { isFloating } from '../dtype.js';
import type { TraceNode, Value } from './graph.js';

export const MAX_GROUP_INPUTS = 16;
export const MIN_GROUP_OPS = 3;

export interface FusionGroup {
  /** Member node ids in trace order; the last is the sink, whose value is the group's output. */
  nodes: number[];
  /** Tensor inputs (value ids) in the order the group first reads them. */
  inputs: number[];
  /** One-element constants read as immediates: value id → value. */
  imms: Map<number, number>;
  shape: readonly number[];
  dtype: string;
}

const ELEMENTWISE = new Set(['add', 'sub', 'mul', 'div', 'where', 'unary', 'unary_backward']);

/** Whether a node can be in a group (as a sink when it computes, as a producer also when it broadcasts). */
function fusible(n: TraceNode, values: readonly Value[]): boolean {
  if (n.outputs.length !== 1) return false;
  const out = values[n.outputs[0]!]!;
  if (out.device !== 'cpu') return false;
  if (ELEMENTWISE.has(n.op)) return isFloating(out.dtype);
  return n.op === 'broadcast_to' && (isFloating(out.dtype) || out.dtype === 'uint8');
}

function broadcastsTo(shape: readonly number[], target: readonly number[]): boolean {
  const off = target.length - shape.length;
  return off >= 0 && shape.every((d, i) => d === 1 || d === target[off + i]);
}

/**
 * The groups of a trace's live nodes (in trace order). `results`: value ids the function returns;
 * `imm`: a one-element constant's value, or undefined for any other value.
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
  const assigned = new Set<number>();
  const imms = new Map<number, number | undefined>();
  const immOf = (v: number): number | undefined => {
    if (!imms.has(v)) imms.set(v, imm(v));
    return imms.get(v);
  };
  // The tensor inputs of a set of members, in first-read order.
  const inputsOf = (members: ReadonlySet<number>): number[] => {
    const inputs: number[] = [];
    for (const id of [...members].sort((a, b) => a - b)) {
      for (const v of byId.get(id)!.inputs) {
        if (v === null || immOf(v) !== undefined || inputs.includes(v)) continue;
        const producer = values[v]!;
        if (producer.origin === 'node' && members.has(producer.index)) continue;
        inputs.push(v);
      }
    }
    return inputs;
  };
  const groups: FusionGroup[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const sink = nodes[i]!;
    if (assigned.has(sink.id) || sink.op === 'broadcast_to' || !fusible(sink, values)) continue;
    const out = values[sink.outputs[0]!]!;
    const members = new Set([sink.id]);
    const canJoin = (p: TraceNode): boolean => {
      const v = p.outputs[0]!;
      if (assigned.has(p.id) || members.has(p.id) || !fusible(p, values) || results.has(v)) return false;
      if (!(consumers.get(v) ?? []).every((c) => members.has(c))) return false;
      if (!broadcastsTo(values[v]!.shape, out.shape)) return false;
      if (inPlaceAt.some((at) => at > p.id && at < sink.id)) return false;
      return inputsOf(new Set([...members, p.id])).length <= MAX_GROUP_INPUTS;
    };
    for (let grown = true; grown; ) {
      grown = false;
      for (const id of [...members]) {
        for (const v of byId.get(id)!.inputs) {
          const producer = v === null ? undefined : values[v]!;
          if (producer?.origin !== 'node') continue;
          const p = byId.get(producer.index);
          if (p && canJoin(p)) {
            members.add(p.id);
            grown = true;
          }
        }
      }
    }
    const ops = [...members].filter((id) => byId.get(id)!.op !== 'broadcast_to').length;
    if (ops < MIN_GROUP_OPS) continue;
    for (const id of members) assigned.add(id);
    const inputs = inputsOf(members);
    const groupImms = new Map<number, number>();
    for (const id of members) {
      for (const v of byId.get(id)!.inputs) if (v !== null && immOf(v) !== undefined) groupImms.set(v, immOf(v)!);
    }
    groups.push({ nodes: [...members].sort((a, b) => a - b), inputs, imms: groupImms, shape: out.shape, dtype: out.dtype });
  }
  return groups.reverse();
}
