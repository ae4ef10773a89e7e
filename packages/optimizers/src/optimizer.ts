/**
 * The interface every optimizer shares, and the bookkeeping they have in common: checking the
 * parameters against the gradients, float32 state slots per parameter, step counters, learning-rate
 * schedules, parameter groups, global-norm clipping, and state snapshots for checkpoints.
 */
import * as kx from '@kexue/core-cuda';
import { ArgumentError, ShapeError, type Tensor } from '@kexue/core-cuda';

import { checkKeys, learningRateOption, numberOption } from './options.js';
import { scheduleFn, type Schedule, type ScheduleFn } from './schedules.js';
import { StepVerdicts, type UpdateVerdict } from './verdicts.js';

/** Parameters (or their gradients) by name. */
export type NamedTensors = Record<string, Tensor>;

/** A set of parameters with their own learning rate and/or weight decay. */
export interface ParamGroup {
  /** Which parameters: a regular expression tested on the name, a list of names, or a predicate. */
  match: RegExp | readonly string[] | ((name: string) => boolean);
  learningRate?: number;
  weightDecay?: number;
}

/** Options every optimizer takes. */
export interface CommonOptions {
  learningRate?: number;
  weightDecay?: number;
  /** Multiplier of the learning rate by step: a function or a piecewise-linear table. */
  schedule?: Schedule;
  /** Clip the gradients to this global L2 norm (torch's clip_grad_norm_: × maxNorm/(norm + 1e-6)). */
  clipNorm?: number;
  /** Parameter groups, tested in order; the first that matches a name gives its lr and decay. */
  groups?: readonly ParamGroup[];
}

export const COMMON_OPTION_KEYS = ['learningRate', 'weightDecay', 'schedule', 'clipNorm', 'groups'] as const;

/** What every optimizer's `defaults` gives the base class (the rest is the optimizer's own). */
export interface BaseDefaults {
  readonly learningRate: number;
  readonly weightDecay: number;
}

/** The options an optimizer's `defaults` make: each one optional, with its doc comment. */
export type OptionsOf<D> = { -readonly [K in keyof D]?: D[K] };

/** The names of an optimizer's options: the common ones, then those of its defaults, then `extra`. */
export function optionKeys(defaults: BaseDefaults, extra: readonly string[] = []): string[] {
  return [...new Set([...COMMON_OPTION_KEYS, ...Object.keys(defaults), ...extra])];
}

/** Per-call options of step(). */
export interface StepOptions {
  /** Multiplies every gradient before use (1/lossScale to unscale); default 1. */
  gradScale?: number;
  /**
   * The global norm of the gradients as given (before gradScale), when the caller has it already:
   * a number, or a one-element tensor (kx.globalNormTensor), which a step inside kx.compile needs
   * (a number would be repeated at every replay: E_ARG there).
   */
  gradNorm?: number | Tensor;
}

/** What a step did. */
export interface StepResult {
  /** The 0-based step counter this step ran at (micro-steps for Tiger). */
  step: number;
  /** The schedule's multiplier at that step. */
  scheduleMultiplier: number;
  /**
   * The global gradient norm after gradScale (computed only when clipping or given); null inside
   * kx.compile, where the norm stays on the device.
   */
  gradNorm: number | null;
  /** Whether clipping scaled the gradients down (false inside kx.compile: the device decides). */
  clipped: boolean;
  /**
   * Parameters whose update was skipped for a non-finite gradient (Tiger's guard). For parameters
   * on a GPU it is read from the device when first accessed (which waits for the updates), not
   * during step(): the host goes on queueing work meanwhile.
   */
  readonly skipped: string[];
}

/** Serialisable optimizer state: tensors named "<param>.<slot>" plus JSON-able counters. */
export interface OptimizerState {
  tensors: NamedTensors;
  meta: OptimizerMeta;
}

export interface OptimizerMeta {
  /** 'tiger', 'lion', 'adamw' or 'sgd'. */
  optimizer: string;
  /** The optimizer's step counter (micro-steps for Tiger). */
  step: number;
  /** Updates applied to each parameter (AdamW's bias correction, SGD's first step). */
  paramSteps: Record<string, number>;
}

/** The numbers of one parameter's update (what a replayed step recomputes). */
export interface UpdateNumbers {
  name: string;
  /** The parameter's device. */
  device: string;
  /** The group's learning rate times the schedule's multiplier. */
  learningRate: number;
  /** The group's weight decay. */
  weightDecay: number;
  gradScale: number;
  /** The optimizer's 0-based step counter. */
  step: number;
  /** How many times this parameter was updated before (0 on its first update). */
  paramStep: number;
}

/** What an optimizer's update of one parameter gets. */
export interface ParamUpdate extends UpdateNumbers {
  param: Tensor;
  grad: Tensor;
  /** The parameter's state tensors by slot name (float32, its shape). */
  slots: Record<string, Tensor>;
}

/** The numbers of one parameter's update and the parameter (an optimizer's options may depend on it). */
export interface ReplayUpdate extends UpdateNumbers {
  param: Tensor;
}

/** One native call of a step: the parameters it updates, in order, and its attributes. */
export interface ReplayCall {
  names: string[];
  attrs: kx.Attrs;
}

interface ResolvedGroup {
  test: (name: string) => boolean;
  learningRate: number | undefined;
  weightDecay: number | undefined;
}

function resolveGroups(groups: unknown, where: string): ResolvedGroup[] {
  if (groups === undefined) return [];
  if (!Array.isArray(groups)) throw new ArgumentError(`${where}: groups must be an array`);
  return groups.map((g: unknown, i) => {
    const gw = `${where}: groups[${i}]`;
    const o = checkKeys(g, ['match', 'learningRate', 'weightDecay'], gw);
    const m = o.match;
    let test: (name: string) => boolean;
    if (m instanceof RegExp) test = (n) => new RegExp(m.source, m.flags.replace('g', '')).test(n);
    else if (Array.isArray(m)) test = (n) => m.includes(n);
    else if (typeof m === 'function') test = (n) => Boolean((m as (n: string) => unknown)(n));
    else throw new ArgumentError(`${gw}: match must be a RegExp, a list of names or a function`);
    return {
      test,
      learningRate: o.learningRate === undefined ? undefined : learningRateOption(o.learningRate, 0, gw),
      weightDecay: o.weightDecay === undefined ? undefined : numberOption(o.weightDecay, 0, 'weightDecay', gw, { min: 0 }),
    };
  });
}

/** Copies a tensor into new storage (exact: through its raw bits). */
function copyTensor(t: Tensor): Tensor {
  return kx.tensor(t.dataSync(), t.shape, { dtype: t.dtype, device: t.device });
}

/**
 * The shared optimizer machinery. Subclasses name their state slots (slotNames) and update a
 * step's parameters (updateGroup). Parameters are updated in place; state tensors are created
 * (zeros, float32) on a parameter's first step and live until zeroState() or dispose().
 */
export abstract class Optimizer {
  /** 'tiger', 'lion', 'adamw' or 'sgd'. */
  abstract readonly kind: string;
  readonly learningRate: number;
  readonly weightDecay: number;
  readonly clipNorm: number | null;
  protected readonly schedule: ScheduleFn;
  readonly #groups: ResolvedGroup[];
  readonly #slots = new Map<string, Record<string, Tensor>>();
  readonly #paramSteps = new Map<string, number>();
  readonly #groupCache = new Map<string, ResolvedGroup | undefined>();
  #step = 0;
  /** Steps' verdicts whose flags are not read yet: GPU steps', and compiled steps' (see #settle). */
  #pending: StepVerdicts[] = [];

  /** `opts`: the options as given, keys checked; without a schedule the multiplier is 1 throughout. */
  protected constructor(opts: Record<string, unknown>, defaults: BaseDefaults, where: string) {
    this.learningRate = learningRateOption(opts.learningRate, defaults.learningRate, where);
    this.weightDecay = numberOption(opts.weightDecay, defaults.weightDecay, 'weightDecay', where, { min: 0 });
    this.clipNorm = opts.clipNorm === undefined ? null : numberOption(opts.clipNorm, 0, 'clipNorm', where, { min: 0, minExclusive: true });
    const schedule = opts.schedule ?? null;
    this.schedule = schedule === null ? () => 1 : scheduleFn(schedule, where);
    this.#groups = resolveGroups(opts.groups, where);
  }

  /** The state slots of one parameter (e.g. ['m'] for Tiger, ['m', 'v'] for AdamW). */
  protected abstract slotNames(): readonly string[];

  /**
   * Updates every parameter of a step in place, called once per step with all of them (in params'
   * order), and says for each whether its update was applied: a boolean, or an index into a flags
   * tensor a native update returned, which step() reads (see StepVerdicts for when).
   */
  protected abstract updateGroup(us: readonly ParamUpdate[]): UpdateVerdict[];

  /** The step counter: steps taken (micro-steps for Tiger). */
  get iterations(): number {
    return this.#step;
  }

  /** The schedule's multiplier at a step (default: the step the next update runs at). */
  scheduleMultiplier(step = this.#step): number {
    return this.schedule(step);
  }

  /**
   * One step: every parameter updated in place from its gradient. grads must have exactly the keys
   * of params, with equal shapes (E_SHAPE otherwise).
   */
  step(params: NamedTensors, grads: NamedTensors, options: StepOptions = {}): StepResult {
    const where = `${this.kind}.step`;
    const names = this.#checkParams(params, grads, where);
    const o = checkKeys(options, ['gradScale', 'gradNorm'], where);
    const baseScale = numberOption(o.gradScale, 1, 'gradScale', where, { min: 0, minExclusive: true });
    const givenNorm = o.gradNorm;
    if (givenNorm !== undefined && typeof givenNorm !== 'number' && !(givenNorm instanceof kx.Tensor)) throw new ArgumentError(`${where}: gradNorm must be a number or a tensor`);
    const slots = names.map((n) => this.#slotsFor(n, params[n]!, where));
    const tracing = kx.tracing();

    let gradScale = baseScale;
    let gradNorm: number | null = null;
    let clipped = false;
    // Inside kx.compile the norm is never read: clipping multiplies the gradients by a factor
    // computed on the device (the same rule), and a replay recomputes it.
    let stepGrads = grads;
    if (tracing) {
      if (typeof givenNorm === 'number') {
        throw new ArgumentError(`${where}: gradNorm is a number, which every replay of kx.compile would repeat; pass it as a tensor (kx.globalNormTensor) or leave it out`);
      }
      if (this.clipNorm !== null) stepGrads = this.#clipOnDevice(names, grads, givenNorm, baseScale);
      // Earlier steps' flags stay pending (reading is refused while tracing): only Tiger's updates
      // have flags, and its options do not depend on the counts those flags settle.
    } else {
      if (givenNorm !== undefined) gradNorm = (typeof givenNorm === 'number' ? givenNorm : givenNorm.item()) * gradScale;
      if (this.clipNorm !== null) {
        if (gradNorm === null) gradNorm = kx.globalNorm(names.map((n) => grads[n]!)) * gradScale;
        // A non-finite norm is left to the update (Tiger's guard skips those parameters).
        const coef = this.clipNorm / (gradNorm + 1e-6);
        if (Number.isFinite(gradNorm) && coef < 1) {
          gradScale *= coef;
          clipped = true;
        }
      }
      this.#settle(); // the previous step's flags: its updates ran long ago
    }

    const t = this.#step;
    const mult = this.#multiplier(t, where);
    const devices = names.map((n) => params[n]!.device);
    const updates = this.#updates(names, devices, gradScale, t, mult).map(
      (u, i): ParamUpdate => ({ ...u, param: params[u.name]!, grad: stepGrads[u.name]!, slots: slots[i]! }),
    );
    const onApplied = (name: string) => this.#paramSteps.set(name, (this.#paramSteps.get(name) ?? 0) + 1);
    let verdicts: UpdateVerdict[];
    try {
      if (!tracing) verdicts = this.updateGroup(updates);
      else {
        // A replay recomputes the step's numbers and advances the counters before the program runs,
        // and hands over its guard flags after it (read later, as a GPU step's).
        const traced = this.replayCalls(updates);
        if (!traced) throw new ArgumentError(`${where} cannot run inside kx.compile: a replay would repeat this step's learning rate and counters; call step() outside the compiled function`);
        let layout: UpdateVerdict[] = [];
        const paramList = names.map((n) => params[n]!);
        kx.dynamicAttrs(traced.length, () => this.#replay(names, devices, paramList, baseScale, traced, layout, where));
        verdicts = layout = this.updateGroup(updates);
        this.#receiveReplayFlags(names, layout, onApplied);
      }
    } finally {
      if (stepGrads !== grads) kx.dispose(Object.values(stepGrads));
    }
    const stepVerdicts = new StepVerdicts(names, verdicts, onApplied, tracing);
    this.#step = t + 1;
    if (stepVerdicts.settled) return { step: t, scheduleMultiplier: mult, gradNorm, clipped, skipped: stepVerdicts.skipped };
    // GPU or traced flags: skipped is read from them when asked for (or at the next step, state(),
    // zeroState()), once the device has got there (and the trace has ended).
    this.#pending.push(stepVerdicts);
    const result = { step: t, scheduleMultiplier: mult, gradNorm, clipped } as StepResult;
    Object.defineProperty(result, 'skipped', {
      enumerable: true,
      get: () => {
        stepVerdicts.settle();
        return stepVerdicts.skipped;
      },
    });
    return result;
  }

  /**
   * The native calls updateGroup makes for these updates, in order (the parameters each updates and
   * its attributes), for a step that kx.compile replays; null (the default) where an optimizer's
   * updates cannot be replayed.
   */
  protected replayCalls(_us: readonly ReplayUpdate[]): ReplayCall[] | null {
    return null;
  }

  /** The gradients times global-norm clipping's factor, computed on the device (new tensors). */
  #clipOnDevice(names: readonly string[], grads: NamedTensors, givenNorm: Tensor | undefined, gradScale: number): NamedTensors {
    return kx.tidy(() => {
      const factor = kx.clipFactor(givenNorm ?? kx.globalNormTensor(names.map((n) => grads[n]!)), this.clipNorm!, gradScale);
      return Object.fromEntries(names.map((n) => [n, kx.keep(kx.mul(grads[n]!, factor))]));
    });
  }

  /**
   * A traced step's guard flags (Tiger's): every replay hands over its own flags tensors
   * (kx.replayOutput), whose verdicts are then read as a GPU step's are, later.
   */
  #receiveReplayFlags(names: readonly string[], traced: readonly UpdateVerdict[], onApplied: (name: string) => void): void {
    const flags = [...new Set(traced.flatMap((v) => (typeof v === 'boolean' ? [] : [v.flags])))];
    const flagged = names.filter((_, i) => typeof traced[i] !== 'boolean');
    let received: kx.Tensor[] = [];
    for (const f of flags) {
      kx.replayOutput(f, (t) => {
        received.push(t);
        if (received.length < flags.length) return;
        const fresh = received;
        received = [];
        const verdicts = traced.flatMap((v) => (typeof v === 'boolean' ? [] : [{ flags: fresh[flags.indexOf(v.flags)]!, index: v.index }]));
        this.#pending.push(new StepVerdicts(flagged, verdicts, onApplied, true));
      });
    }
  }

  /** The schedule's multiplier at step t (E_ARG for a negative or non-finite one). */
  #multiplier(t: number, where: string): number {
    const mult = this.schedule(t);
    if (!Number.isFinite(mult) || mult < 0) throw new ArgumentError(`${where}: the schedule gave ${mult} at step ${t}`);
    return mult;
  }

  /** The numbers of each parameter's update at step t from the counters as they are. */
  #updates(names: readonly string[], devices: readonly string[], gradScale: number, t: number, mult: number): UpdateNumbers[] {
    return names.map((name, i) => {
      const group = this.#groupOf(name);
      return {
        name,
        device: devices[i]!,
        learningRate: (group?.learningRate ?? this.learningRate) * mult,
        weightDecay: group?.weightDecay ?? this.weightDecay,
        gradScale,
        step: t,
        paramStep: this.#paramSteps.get(name) ?? 0,
      };
    });
  }

  /**
   * A replayed step (kx.compile): the host part of step() from the counters as they are now. The
   * calls must update the same parameters as the traced ones (E_ARG otherwise, before anything
   * moves: the program's calls are fixed); then the parameters whose traced verdict was a boolean
   * count as updated (those with guard flags count when their flags are read).
   */
  #replay(
    names: readonly string[],
    devices: readonly string[],
    params: readonly Tensor[],
    gradScale: number,
    traced: readonly ReplayCall[],
    layout: readonly UpdateVerdict[],
    where: string,
  ): kx.Attrs[] {
    this.#settle();
    const t = this.#step;
    const numbers = this.#updates(names, devices, gradScale, t, this.#multiplier(t, where));
    const calls = this.replayCalls(numbers.map((u, i) => ({ ...u, param: params[i]! })))!;
    const same = calls.length === traced.length && calls.every((c, i) => c.names.join('\n') === traced[i]!.names.join('\n'));
    if (!same) throw new ArgumentError(`${where}: the parameters' update calls differ from the compiled step's (parameters with different step counts or options); call step() outside kx.compile`);
    names.forEach((name, i) => {
      if (layout[i] === true) this.#paramSteps.set(name, (this.#paramSteps.get(name) ?? 0) + 1);
    });
    this.#step = t + 1;
    return calls.map((c) => c.attrs);
  }

  /** Reads the pending verdicts, if any (StepVerdicts.settle), counting the applied updates. */
  #settle(): void {
    const pending = this.#pending;
    this.#pending = [];
    for (const v of pending) v.settle();
  }

  /** A copy of the state: tensors "<param>.<slot>" (float32) and the counters. Dispose it when done. */
  state(): OptimizerState {
    this.#settle();
    const tensors: NamedTensors = {};
    for (const [name, slots] of this.#slots) {
      for (const [slot, t] of Object.entries(slots)) tensors[`${name}.${slot}`] = copyTensor(t);
    }
    return { tensors, meta: { optimizer: this.kind, step: this.#step, paramSteps: Object.fromEntries(this.#paramSteps) } };
  }

  /**
   * Replaces the state with a copy of one from state() (or a checkpoint). E_ARG when it belongs to
   * another optimizer or misses a slot; E_SHAPE when a tensor's shape differs from the state this
   * optimizer already holds for that parameter (a parameter's first step checks the rest).
   */
  loadState(state: OptimizerState): void {
    const where = `${this.kind}.loadState`;
    if (!state || typeof state !== 'object' || !state.meta || !state.tensors) throw new ArgumentError(`${where}: expected { tensors, meta }`);
    const { meta, tensors } = state;
    if (meta.optimizer !== this.kind) throw new ArgumentError(`${where}: the state is for '${meta.optimizer}', not '${this.kind}'`);
    const step = numberOption(meta.step, 0, 'meta.step', where, { min: 0, integer: true });
    const slotNames = this.slotNames();
    const byParam = new Map<string, Record<string, Tensor>>();
    for (const [key, t] of Object.entries(tensors)) {
      const dot = key.lastIndexOf('.');
      const name = key.slice(0, dot);
      const slot = key.slice(dot + 1);
      if (dot <= 0 || !slotNames.includes(slot)) throw new ArgumentError(`${where}: unexpected state tensor '${key}' (slots: ${slotNames.join(', ')})`);
      if (!(t instanceof kx.Tensor) || t.dtype !== 'float32') throw new ArgumentError(`${where}: '${key}' must be a float32 tensor`);
      const mine = this.#slots.get(name)?.[slot];
      if (mine && (mine.shape.length !== t.shape.length || mine.shape.some((d, i) => d !== t.shape[i]))) {
        throw new ShapeError(`${where}: '${key}' has shape [${t.shape.join(', ')}], the optimizer's is [${mine.shape.join(', ')}]`);
      }
      const rec = byParam.get(name) ?? {};
      rec[slot] = t;
      byParam.set(name, rec);
    }
    for (const [name, rec] of byParam) {
      const missing = slotNames.filter((s) => !rec[s]);
      if (missing.length > 0) throw new ArgumentError(`${where}: '${name}' has no ${missing.join(', ')}`);
      const shapes = new Set(Object.values(rec).map((t) => t.shape.join(',')));
      if (shapes.size > 1) throw new ShapeError(`${where}: the slots of '${name}' have different shapes`);
    }
    this.zeroState();
    for (const [name, rec] of byParam) {
      const own: Record<string, Tensor> = {};
      for (const s of slotNames) own[s] = kx.keep(copyTensor(rec[s]!));
      this.#slots.set(name, own);
    }
    this.#step = step;
    for (const [name, n] of Object.entries(meta.paramSteps ?? {})) {
      this.#paramSteps.set(name, numberOption(n, 0, `meta.paramSteps['${name}']`, where, { min: 0, integer: true }));
    }
  }

  /** Frees every state tensor and resets the counters: the next step starts from scratch. */
  zeroState(): void {
    this.#settle();
    for (const slots of this.#slots.values()) kx.dispose(Object.values(slots));
    this.#slots.clear();
    this.#paramSteps.clear();
    this.#step = 0;
  }

  /** Frees the state (as zeroState). */
  dispose(): void {
    this.zeroState();
  }

  #groupOf(name: string): ResolvedGroup | undefined {
    if (!this.#groupCache.has(name)) this.#groupCache.set(name, this.#groups.find((g) => g.test(name)));
    return this.#groupCache.get(name);
  }

  #checkParams(params: NamedTensors, grads: NamedTensors, where: string): string[] {
    if (!params || typeof params !== 'object') throw new ArgumentError(`${where}: params must be a record of tensors`);
    if (!grads || typeof grads !== 'object') throw new ArgumentError(`${where}: grads must be a record of tensors`);
    const names = Object.keys(params);
    const gnames = Object.keys(grads);
    const missing = names.filter((n) => !(n in grads));
    const extra = gnames.filter((n) => !(n in params));
    if (missing.length > 0 || extra.length > 0) {
      const parts = [missing.length ? `no gradient for ${missing.join(', ')}` : '', extra.length ? `gradients for unknown ${extra.join(', ')}` : ''];
      throw new ShapeError(`${where}: the gradients do not match the parameters (${parts.filter(Boolean).join('; ')})`);
    }
    for (const n of names) {
      const p = params[n];
      const g = grads[n];
      if (!(p instanceof kx.Tensor) || !(g instanceof kx.Tensor)) throw new ArgumentError(`${where}: '${n}' must be a tensor in params and grads`);
      if (!kx.isFloating(p.dtype) || !kx.isFloating(g.dtype)) {
        throw new kx.DTypeError(`${where}: '${n}' must be a floating tensor with a floating gradient, got ${p.describe()} and ${g.describe()}`);
      }
      if (p.shape.length !== g.shape.length || p.shape.some((d, i) => d !== g.shape[i])) {
        throw new ShapeError(`${where}: the gradient of '${n}' has shape [${g.shape.join(', ')}], the parameter [${p.shape.join(', ')}]`);
      }
    }
    return names;
  }

  #slotsFor(name: string, param: Tensor, where: string): Record<string, Tensor> {
    const have = this.#slots.get(name);
    if (have) {
      for (const [slot, t] of Object.entries(have)) {
        if (t.shape.length !== param.shape.length || t.shape.some((d, i) => d !== param.shape[i])) {
          throw new ShapeError(`${where}: the state '${name}.${slot}' has shape [${t.shape.join(', ')}], the parameter [${param.shape.join(', ')}]`);
        }
        if (t.device !== param.device) throw new kx.DeviceError(`${where}: the state of '${name}' is on ${t.device}, the parameter on ${param.device}`);
      }
      return have;
    }
    const slots: Record<string, Tensor> = {};
    for (const s of this.slotNames()) slots[s] = kx.keep(kx.zeros(param.shape, { device: param.device }));
    this.#slots.set(name, slots);
    return slots;
  }
}
