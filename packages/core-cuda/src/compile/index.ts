/**
 * kx.compile (FUSION.md): a function of tensors traced once per signature by running it, then
 * replayed as a native program in one addon call, with compositions of a hand-fused kernel replaced
 * by it (every device), and chains of elementwise ops, and reductions with their elementwise
 * prologues and epilogues, fused into groups (on the CPU: emitted x86 code or the block
 * interpreter; on CUDA: the group's PTX or an interpreter kernel, never yet run on a GPU).
 */
import { ArgumentError, fromNativeError } from '../errors.js';
import { native, type NativeProgram } from '../native.js';
import { countProgramSteps, profiler } from '../profile.js';
import { activeTape } from '../tape.js';
import { nextTensorId, Tensor } from '../tensor.js';
import { activeTrace, setActiveTrace } from '../trace_hook.js';
import { buildResult, flattenArgs, resultTemplate, type ResultTemplate } from './args.js';
import { formatPlan } from './dump.js';
import { lower, type CompiledPlan, type DynamicSteps, type LeafSource } from './plan.js';
import { Recorder } from './recorder.js';

export type { CompiledPlan, PlannedGroup, LeafSource } from './plan.js';
export type { TraceNode, Value, NodeKind, ValueOrigin } from './graph.js';

export interface CompileOptions {
  /** Fuse elementwise chains and reductions (default true); false replays the traced ops one by one, natively. */
  fuse?: boolean;
  /** A name for KX_DUMP's listing (default: the function's name). */
  name?: string;
}

/** Counts of a compiled function's calls. */
export interface CompileStats {
  /** Calls that traced (a new signature). */
  traces: number;
  /** Calls that replayed a program. */
  replays: number;
}

/** A compiled function: fn's signature, plus what it has compiled. */
export type CompiledFunction<A extends unknown[], R> = ((...args: A) => R) & {
  /** The plan for these arguments' signature, if a call has traced it (plan never traces). */
  plan(...args: A): CompiledPlan | undefined;
  /**
   * Drops every traced signature and frees its program now (with the constants it holds); the next
   * call of each signature traces again. For a server done with a shape, or about to replace the
   * model the function reads.
   */
  clear(): void;
  readonly stats: CompileStats;
};

/** One traced signature. */
interface Entry {
  program: NativeProgram;
  captures: Tensor[];
  /** Tensors the function updates in place (arguments or captures) and by how many versions. */
  mutated: { from: 'arg' | 'capture'; index: number; delta: number }[];
  template: ResultTemplate;
  leaves: LeafSource[];
  plan: CompiledPlan;
  dynamic: DynamicSteps[];
  /** The profiler's row of each program step. */
  stepRows: string[];
  /** Receivers of the program's outputs after the result's leaves (replayOutput), in order. */
  receivers: ((t: Tensor) => void)[];
  /** Conditions for replaying (guardTrace): while one fails, the function is traced again. */
  guards: (() => boolean)[];
}

/**
 * Compiles `fn`: a function of tensors (and of numbers, strings and booleans, which are static: each
 * new value is a new signature), returning tensors (one, or arrays and records of them, or nothing).
 *
 * The first call for a signature (the arguments' shapes, dtypes and devices, the static values and
 * how tensors repeat among the arguments) runs fn eagerly while a recorder notes every native op,
 * and returns fn's own results. Tensors fn reads from outside (a model's parameters) are captured by
 * reference: each replay reads their contents as they are then, and in-place updates of them (the
 * optimizer ops) happen again at each replay. Tensors fn makes without an op (scalar operands,
 * `kx.zeros`) are constants, fixed at the trace. Later calls with a known signature replay the
 * program natively in one addon call. While tracing, reading a value on the host (`dataSync`,
 * `item`, `toFloat32Array`, `data`, `to`) is E_ARG. Dropout from a Philox generator draws fresh
 * masks at each replay (its key is a per-replay attribute), the masks eager steps would draw.
 * A compiled function cannot run inside valueAndGrad (its replays record nothing); call valueAndGrad
 * inside it instead. Called while another compiled function traces, fn simply runs (and is traced
 * as part of the outer one). A signature whose captured tensors were disposed is traced again. Ops
 * whose attributes change from call to call (an optimizer's step and learning rate) are announced
 * with `kx.dynamicAttrs`, whose compute runs before each replay (the optimizers' step() and dropout
 * do); tensors the code reads back later are handed over by each replay through `kx.replayOutput`.
 *
 * `KX_DUMP=1` prints each new plan (nodes, groups, their programs) to stderr.
 */
export function compile<A extends unknown[], R>(fn: (...args: A) => R, options: CompileOptions = {}): CompiledFunction<A, R> {
  if (typeof fn !== 'function') throw new ArgumentError('kx.compile: fn must be a function');
  if (options === null || typeof options !== 'object') throw new ArgumentError('kx.compile: options must be an object');
  const { fuse = true, name = fn.name || 'anonymous' } = options;
  if (typeof fuse !== 'boolean') throw new ArgumentError(`kx.compile: fuse must be a boolean, got ${String(fuse)}`);
  if (typeof name !== 'string') throw new ArgumentError(`kx.compile: name must be a string, got ${String(name)}`);
  const cache = new Map<string, Entry>();
  const stats: CompileStats = { traces: 0, replays: 0 };

  const trace = (args: A, tensors: Tensor[], key: string): R => {
    const versions = tensors.map((t) => t.version);
    const recorder = new Recorder(tensors, nextTensorId());
    try {
      setActiveTrace(recorder);
      let result: R;
      try {
        result = fn(...args);
      } finally {
        setActiveTrace(null);
      }
      recorder.finish();
      const { template, leaves } = resultTemplate(result);
      const extra = recorder.replayOutputs;
      const { plan, spec, leaves: sources, dynamic, stepRows } = lower(recorder, [...leaves, ...extra.map((o) => o.tensor)].map((t) => recorder.valueOf(t)), fuse);
      let program: NativeProgram;
      try {
        program = native.programCreate(spec);
      } catch (err) {
        throw fromNativeError(err);
      }
      const mutated: Entry['mutated'] = [];
      tensors.forEach((t, i) => {
        if (t.version !== versions[i] && tensors.indexOf(t) === i) mutated.push({ from: 'arg', index: i, delta: t.version - versions[i]! });
      });
      recorder.captures.forEach((t, i) => {
        if (t.version !== recorder.captureVersions[i]) mutated.push({ from: 'capture', index: i, delta: t.version - recorder.captureVersions[i]! });
      });
      cache.set(key, { program, captures: recorder.captures, mutated, template, leaves: sources, plan, dynamic, stepRows, receivers: extra.map((o) => o.receive), guards: recorder.guards });
      stats.traces++;
      if (process.env.KX_DUMP === '1') process.stderr.write(formatPlan(plan, `${name} (${key})`));
      return result;
    } finally {
      recorder.release();
    }
  };

  const replay = (entry: Entry, tensors: Tensor[]): R => {
    const patches = entry.dynamic.flatMap((d) => {
      const attrs = d.compute();
      if (!Array.isArray(attrs) || attrs.length !== d.steps.length) {
        throw new ArgumentError(`kx.compile: a dynamicAttrs compute gave ${Array.isArray(attrs) ? attrs.length : 'no'} attribute sets for the ${d.steps.length} ops it announced`);
      }
      return d.steps.flatMap((step, i) => (step < 0 ? [] : [{ step, op: d.ops[i]!, attrs: attrs[i]! }]));
    });
    // While profiling, the program times its steps into the op rows, as eager ops would be.
    const stepNs = profiler.enabled ? new Float64Array(entry.stepRows.length) : undefined;
    let raw;
    try {
      raw = native.programRun(entry.program, [...tensors.map((t) => t.handle), ...entry.captures.map((t) => t.handle)], patches.length ? patches : undefined, stepNs);
    } catch (err) {
      throw fromNativeError(err);
    }
    if (stepNs) countProgramSteps(entry.stepRows, stepNs);
    const outs = raw.map((r) => new Tensor(r));
    for (const m of entry.mutated) (m.from === 'arg' ? tensors : entry.captures)[m.index]!.version += m.delta;
    const leaves = entry.leaves.map((s) => (s.from === 'arg' ? tensors : s.from === 'capture' ? entry.captures : outs)[s.index]!);
    stats.replays++;
    const results = leaves.length - entry.receivers.length;
    entry.receivers.forEach((receive, i) => receive(leaves[results + i]!));
    return buildResult(entry.template, leaves.slice(0, results)) as R;
  };

  const compiled = (...args: A): R => {
    if (activeTrace()) return fn(...args);
    if (activeTape()) {
      throw new ArgumentError(`kx.compile: ${name} cannot be called inside valueAndGrad (a replay records no gradients); call valueAndGrad inside the compiled function`);
    }
    const { tensors, key } = flattenArgs(args);
    const entry = cache.get(key);
    if (entry && !entry.captures.some((t) => t.isDisposed) && entry.guards.every((valid) => valid())) return replay(entry, tensors);
    if (entry) drop(key, entry);
    return trace(args, tensors, key);
  };
  // A stale program's constants (packed weights) are freed now, not when V8 collects the program.
  const drop = (key: string, entry: Entry) => {
    cache.delete(key);
    native.programDispose(entry.program);
  };
  return Object.assign(compiled, {
    plan: (...args: A) => cache.get(flattenArgs(args).key)?.plan,
    clear: () => {
      for (const [key, entry] of [...cache]) drop(key, entry);
    },
    stats,
  });
}
