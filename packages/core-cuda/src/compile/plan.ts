/**
 * From a trace to a plan: dead ops dropped, compositions of a hand-fused kernel replaced by it
 * (hand_fused.ts), groups formed (on any device), and the steps of the native program laid out
 * with their value numbering (native/program/program.h): inputs (the tensor arguments, then the
 * captures), constants, then each step's outputs.
 */
import type { NativeProgramSpec, NativeStepSpec } from '../native.js';
import { opRowName } from '../profile.js';
import type { Attrs } from '../tape.js';
import { compileGroup, type GroupCode } from './group_program.js';
import { planGroups, type FusionGroup } from './fusion.js';
import { matchHandFused } from './hand_fused.js';
import type { TraceNode, Value } from './graph.js';
import type { Recorder } from './recorder.js';

/** Where a result leaf comes from at a replay. */
export type LeafSource = { from: 'arg' | 'capture' | 'program'; index: number };

export interface PlannedGroup extends FusionGroup {
  program: GroupCode;
}

/** A compiled function's plan for one signature (what `compiled.plan(...)` returns). */
export interface CompiledPlan {
  /** The live nodes of the trace (ops whose results are used, and in-place updates), in order. */
  nodes: readonly TraceNode[];
  /** The trace's values (nodes' inputs and outputs are their ids). */
  values: readonly Value[];
  /** The fused groups (empty with fuse: false). */
  groups: readonly PlannedGroup[];
  /** Steps of the native program: eager ops plus groups. */
  steps: number;
  /** Addon calls per replay: the whole program is one. */
  nativeCallsPerReplay: 1;
  /** Ops the trace recorded, dead ones included. */
  tracedOps: number;
}

/** Program steps whose attributes a dynamicAttrs `compute` gives at each replay (-1: a dropped op). */
export interface DynamicSteps {
  steps: number[];
  ops: string[];
  compute: () => Attrs[];
}

export interface Lowered {
  plan: CompiledPlan;
  spec: NativeProgramSpec;
  leaves: LeafSource[];
  dynamic: DynamicSteps[];
  /** Each program step's row in the profiler: its op's (`matmul (backward)`), or `fused group`. */
  stepRows: string[];
}

/** The live nodes: those whose outputs are results or feed live nodes, and every in-place update. */
function liveNodes(nodes: readonly TraceNode[], results: readonly number[]): TraceNode[] {
  const liveValues = new Set(results);
  const live: TraceNode[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if (!n.inPlace && !n.outputs.some((v) => liveValues.has(v))) continue;
    live.push(n);
    for (const v of n.inputs) if (v !== null) liveValues.add(v);
  }
  return live.reverse();
}

/** Lays out the plan of a finished trace whose result leaves are the values `results`. */
export function lower(rec: Recorder, results: readonly number[], fuse: boolean): Lowered {
  const { values } = rec;
  const live = liveNodes(rec.nodes, results);
  // Rule (0), then the groups (rules 1-5), on every device.
  const nodes = fuse ? matchHandFused(live, values, new Set(results)) : live;
  const groups: PlannedGroup[] = [];
  const byId = new Map(nodes.map((n) => [n.id, n]));
  if (fuse) {
    for (const g of planGroups(nodes, values, new Set(results), (v) => rec.constantValue(v))) {
      groups.push({ ...g, program: compileGroup(g, byId) });
    }
  }
  const groupOf = new Map<number, PlannedGroup>();
  for (const g of groups) for (const id of g.nodes) groupOf.set(id, g);
  // The steps: each node outside groups, and each group at its sink, with the values it reads.
  // (A group's step makes only its outputs; its members' other values exist only inside it.)
  interface Step {
    node: TraceNode;
    group: PlannedGroup | undefined;
    reads: readonly (number | null)[];
    writes: readonly number[];
  }
  const steps = nodes.flatMap((n): Step[] => {
    const g = groupOf.get(n.id);
    if (!g) return [{ node: n, group: undefined, reads: n.inputs, writes: n.outputs }];
    return n.id === g.nodes[g.nodes.length - 1] ? [{ node: n, group: g, reads: g.inputs, writes: g.outputs }] : [];
  });

  // Native numbering: tensor arguments, captures, the constants read (in first-read order), outputs.
  const args = rec.argCount;
  const inputs = args + rec.captures.length;
  const constants: number[] = [];
  const constantIds = new Map<number, number>();
  const isInput = (v: Value) => v.origin === 'arg' || v.origin === 'capture';
  for (const v of [...steps.flatMap((s) => s.reads), ...results]) {
    const value = v === null ? undefined : values[v]!;
    if (value?.origin !== 'const' || constantIds.has(value.id)) continue;
    constantIds.set(value.id, inputs + constants.length);
    constants.push(rec.constants[value.index]!);
  }
  const nativeId = new Map<number, number>();
  let next = inputs + constants.length;
  for (const s of steps) for (const v of s.writes) nativeId.set(v, next++);
  const idOf = (v: number | null): number => {
    if (v === null) return -1;
    const value = values[v]!;
    if (value.origin === 'arg') return value.index;
    if (value.origin === 'capture') return args + value.index;
    return constantIds.get(v) ?? nativeId.get(v)!;
  };
  const specSteps: NativeStepSpec[] = steps.map(({ node, group, reads, writes }) =>
    group
      ? {
          group: {
            code: group.program.code,
            inputs: group.inputs.length,
            outputs: group.program.outputs,
            shape: [...group.shape],
            dtype: group.dtype,
            ...(group.reduce ? { reduce: { op: group.reduce.op, rows: group.reduce.rows, shape: [...group.reduce.shape] } } : {}),
          },
          inputs: reads.map(idOf),
          outputs: writes.length,
        }
      : { op: node.op, attrs: node.attrs, inputs: reads.map(idOf), outputs: writes.length },
  );
  const programOutputs: number[] = [];
  const leaves: LeafSource[] = results.map((v) => {
    const value = values[v]!;
    if (isInput(value)) return { from: value.origin as 'arg' | 'capture', index: value.index };
    const id = idOf(v);
    const k = programOutputs.indexOf(id);
    return { from: 'program', index: k >= 0 ? k : programOutputs.push(id) - 1 };
  });
  const stepOf = new Map<number, number>();
  steps.forEach((s, i) => {
    if (!s.group) stepOf.set(s.node.id, i);
  });
  const dynamic = rec.dynamic.map((d) => ({ steps: d.nodes.map((id) => stepOf.get(id) ?? -1), ops: d.nodes.map((id) => rec.nodes[id]!.op), compute: d.compute }));
  return {
    plan: { nodes, values, groups, steps: specSteps.length, nativeCallsPerReplay: 1, tracedOps: rec.nodes.length },
    spec: { inputs, constants, steps: specSteps, outputs: programOutputs },
    leaves,
    dynamic,
    stepRows: steps.map(({ node, group }) => opRowName(group ? 'fused group' : node.op, node.backward)),
  };
}
