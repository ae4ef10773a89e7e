/**
 * The recorder of a trace: hooked into runKernel (trace_hook.ts) while the function runs eagerly
 * once, it notes every native op with where each input comes from and what it made.
 */
import { isFloating } from '../dtype.js';
import { ArgumentError, fromNativeError } from '../errors.js';
import { native, type NativeHandle } from '../native.js';
import { inBackward, type Attrs } from '../tape.js';
import type { Tensor } from '../tensor.js';
import type { OpObserver } from '../trace_hook.js';
import { kindOf, type TraceNode, type Value, type ValueOrigin } from './graph.js';

let inPlaceOps: Set<string> | null = null;

/** Whether an op updates inputs in place: ops.def says so in its doc ("IN PLACE: ..."). */
function isInPlace(op: string): boolean {
  inPlaceOps ??= new Set(native.buildInfo().ops.filter((o) => o.doc.startsWith('IN PLACE')).map((o) => o.name));
  return inPlaceOps.has(op);
}

export class Recorder implements OpObserver {
  readonly values: Value[] = [];
  /** How many tensor arguments the function was called with (the program's first inputs). */
  readonly argCount: number;
  readonly nodes: TraceNode[] = [];
  /** Tensors from outside the function, in the order first seen, and their versions then. */
  readonly captures: Tensor[] = [];
  readonly captureVersions: number[] = [];
  /** Handles of the constants' storage, held here until the program holds it (release()). */
  readonly constants: NativeHandle[] = [];
  /** Ops whose attributes are recomputed at each replay (dynamicAttrs): node ids and how. */
  readonly dynamic: { nodes: number[]; compute: () => Attrs[] }[] = [];
  /** Tensors every replay hands to a receiver besides the function's results (replayOutput). */
  readonly replayOutputs: { tensor: Tensor; receive: (t: Tensor) => void }[] = [];
  /** Conditions the program's replays need (guardTrace). */
  readonly guards: (() => boolean)[] = [];
  private pending: { count: number; nodes: number[]; compute: () => Attrs[] } | null = null;
  private readonly ids = new Map<Tensor, number>();

  /**
   * `args`: the flattened tensor arguments; `firstId`: the id of the first tensor made during the
   * trace (an unknown tensor with a smaller id was captured from outside, a larger one is a constant).
   */
  constructor(
    args: readonly Tensor[],
    private readonly firstId: number,
  ) {
    this.argCount = args.length;
    args.forEach((t, i) => {
      if (!this.ids.has(t)) this.ids.set(t, this.add('arg', i, 0, t));
    });
  }

  willRun(_op: string, inputs: readonly (Tensor | null | undefined)[]): void {
    for (const t of inputs) if (t) this.valueOf(t);
  }

  didRun(op: string, inputs: readonly (Tensor | null | undefined)[], outputs: readonly Tensor[], attrs: Attrs): void {
    const node: TraceNode = {
      id: this.nodes.length,
      op,
      inputs: inputs.map((t) => (t ? this.valueOf(t) : null)),
      attrs: { ...attrs },
      outputs: [],
      kind: kindOf(op),
      inPlace: isInPlace(op),
      dynamic: this.pending !== null,
      backward: inBackward(),
    };
    if (this.pending) {
      this.pending.nodes.push(node.id);
      if (this.pending.nodes.length === this.pending.count) this.#settleDynamic();
    }
    outputs.forEach((t, k) => {
      const id = this.add('node', node.id, k, t);
      this.ids.set(t, id);
      node.outputs.push(id);
    });
    this.nodes.push(node);
  }

  dynamicAttrs(count: number, compute: () => Attrs[]): void {
    if (this.pending) throw new ArgumentError(`dynamicAttrs: the previous call's ${this.pending.count} ops have not all run (${this.pending.nodes.length} did)`);
    if (!Number.isInteger(count) || count < 0) throw new ArgumentError(`dynamicAttrs: count must be an integer >= 0, got ${String(count)}`);
    this.pending = { count, nodes: [], compute };
    if (count === 0) this.#settleDynamic();
  }

  replayOutput(t: Tensor, receive: (t: Tensor) => void): void {
    if (typeof receive !== 'function') throw new ArgumentError('replayOutput: receive must be a function');
    const v = this.values[this.valueOf(t)]!;
    if (v.origin !== 'node') throw new ArgumentError(`replayOutput: ${t.describe()} was not made by an op of the traced function`);
    this.replayOutputs.push({ tensor: t, receive });
  }

  guard(valid: () => boolean): void {
    if (typeof valid !== 'function') throw new ArgumentError('guardTrace: valid must be a function');
    this.guards.push(valid);
  }

  /** E_ARG when the function ended before the ops a dynamicAttrs call announced had run. */
  finish(): void {
    if (this.pending) throw new ArgumentError(`dynamicAttrs: announced ${this.pending.count} ops, the traced function ran ${this.pending.nodes.length} of them`);
  }

  #settleDynamic(): void {
    this.dynamic.push({ nodes: this.pending!.nodes, compute: this.pending!.compute });
    this.pending = null;
  }

  /** The value of a tensor, classifying one seen for the first time as a capture or a constant. */
  valueOf(t: Tensor): number {
    const known = this.ids.get(t);
    if (known !== undefined) return known;
    let id: number;
    if (t.id < this.firstId) {
      id = this.add('capture', this.captures.length, 0, t);
      this.captures.push(t);
      this.captureVersions.push(t.version);
    } else {
      // Made inside the function without an op (a scalar operand, zeros): its storage is kept under
      // a handle of its own, since the function may dispose the tensor before the program exists.
      id = this.add('const', this.constants.length, 0, t);
      try {
        this.constants.push(native.run('reshape', [t.handle], { shape: [...t.shape] })[0]!.handle);
      } catch (err) {
        throw fromNativeError(err);
      }
    }
    this.ids.set(t, id);
    return id;
  }

  /** A one-element floating constant's value (an immediate of a fused group), else undefined. */
  constantValue(valueId: number): number | undefined {
    const v = this.values[valueId]!;
    if (v.origin !== 'const' || v.shape.reduce((a, b) => a * b, 1) !== 1 || !isFloating(v.dtype)) return undefined;
    try {
      const handle = this.constants[v.index]!;
      if (v.dtype === 'float32') return native.toData(handle)[0]!;
      const [f32] = native.run('cast', [handle], { dtype: 'float32' });
      const value = native.toData(f32!.handle)[0]!;
      native.dispose(f32!.handle);
      return value;
    } catch (err) {
      throw fromNativeError(err);
    }
  }

  /** Drops the constants' handles (a built program holds their storage itself). */
  release(): void {
    for (const h of this.constants) native.dispose(h);
  }

  private add(origin: ValueOrigin, index: number, output: number, t: Tensor): number {
    const id = this.values.length;
    this.values.push({ id, origin, index, output, shape: t.shape, dtype: t.dtype, device: t.device });
    return id;
  }
}
