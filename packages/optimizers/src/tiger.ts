/**
 * Tiger ("tight-fisted" optimizer, ALGORITHMS.md §1): sign of a momentum, one float32 state tensor
 * per parameter, gradient accumulation folded into the momentum, per-tensor / per-row RMS learning
 * rates, and the non-finite guard. One fused native call per micro-step and set of parameters that
 * share their options.
 */
import { ArgumentError, tigerAttrs, tigerUpdateGroup, type Tensor, type TigerUpdateOptions } from '@kexue/core-cuda';

import { checkKeys, frozenDefaults, numberOf } from './options.js';
import { Optimizer, optionKeys, type CommonOptions, type OptionsOf, type ParamUpdate, type ReplayCall, type ReplayUpdate } from './optimizer.js';
import { TIGER_PARAM_CLASSES, tigerParamClass, type ParamClassOption, type TigerParamClass } from './param-class.js';
import type { UpdateVerdict } from './verdicts.js';

/** Tiger's options: the common ones, those of Tiger.defaults, and paramClass. */
export interface TigerOptions extends CommonOptions, OptionsOf<typeof Tiger.defaults> {
  /** Classes given explicitly, overriding the name rule (tigerParamClass). */
  paramClass?: ParamClassOption;
}

/**
 * Tiger as published, with tiger.py's defaults (Tiger.defaults; the schedule is constant, tiger.py's
 * {0: 1}). Each step() is one micro-step: the parameters move on every gradAccumSteps-th call, and
 * the schedule counts micro-steps. A parameter whose gradient holds NaN or ±Inf keeps its momentum
 * and is shrunk toward its centre (reported in the step's `skipped`).
 */
export class Tiger extends Optimizer {
  /** tiger.py's defaults; each entry's comment says what the option is. */
  static readonly defaults = frozenDefaults({
    /** α, the global relative learning rate. */
    learningRate: 1e-3,
    /** β of the momentum (the blog's 0.945 for vision). */
    beta: 0.965,
    /** λ, decoupled and scaled by the parameter's learning rate (none for the 'bias' and 'scale' classes). */
    weightDecay: 0.01,
    /** k, micro-steps per update. */
    gradAccumSteps: 1,
    /** s of the non-finite guard, θ ← (θ − c)·s + c (c: 1 for the 'scale' class, else 0). */
    shrinkRatio: 0.99,
  });

  readonly kind = 'tiger';
  readonly beta: number;
  readonly gradAccumSteps: number;
  readonly shrinkRatio: number;
  readonly #paramClass: ParamClassOption | undefined;

  constructor(options: TigerOptions = {}) {
    const opts = checkKeys(options, optionKeys(Tiger.defaults, ['paramClass']), 'Tiger');
    super(opts, Tiger.defaults, 'Tiger');
    this.beta = numberOf(opts, Tiger.defaults, 'beta', 'Tiger', { min: 0, max: 1 });
    this.gradAccumSteps = numberOf(opts, Tiger.defaults, 'gradAccumSteps', 'Tiger', { min: 1, integer: true });
    this.shrinkRatio = numberOf(opts, Tiger.defaults, 'shrinkRatio', 'Tiger', { min: 0, max: 1 });
    const pc = opts.paramClass;
    if (pc !== undefined && typeof pc !== 'function') {
      if (pc === null || typeof pc !== 'object') throw new ArgumentError('Tiger: paramClass must be an object or a function');
      for (const [name, c] of Object.entries(pc)) checkClass(c, `paramClass['${name}']`);
    }
    this.#paramClass = pc as ParamClassOption | undefined;
  }

  /** The class of a parameter: the explicit one if given, else by name. */
  classOf(name: string, param: Tensor): TigerParamClass {
    const pc = this.#paramClass;
    const given = typeof pc === 'function' ? pc(name, param) : pc?.[name];
    return given === undefined ? tigerParamClass(name) : checkClass(given, `paramClass('${name}')`);
  }

  protected slotNames(): readonly string[] {
    return ['m'];
  }

  /** The native options of one parameter's micro-step (its class sets lr, rms, decay, centre). */
  #options(u: ReplayUpdate): TigerUpdateOptions {
    const k = this.gradAccumSteps;
    const cls = this.classOf(u.name, u.param);
    const elementwise = cls === 'bias' || cls === 'scale';
    return {
      lr: elementwise ? 0.5 * u.learningRate : u.learningRate,
      beta: this.beta,
      accumSteps: k,
      first: u.step % k === 0,
      update: (u.step + 1) % k === 0,
      rms: elementwise ? 'none' : cls === 'embedding' ? 'row' : 'tensor',
      weightDecay: elementwise ? 0 : u.weightDecay,
      shrink: this.shrinkRatio,
      centre: cls === 'scale' ? 1 : 0,
      gradScale: u.gradScale,
    };
  }

  /**
   * One native call per set of parameters with the same options (a few per step: by class and
   * parameter group), not one per parameter. The verdicts are indices into each call's flags,
   * which step() reads (StepVerdicts says when).
   */
  protected updateGroup(us: readonly ParamUpdate[]): UpdateVerdict[] {
    const verdicts = new Array<UpdateVerdict>(us.length);
    for (const { options, at } of this.#sets(us)) {
      const flags = tigerUpdateGroup(
        at.map((i) => ({ param: us[i]!.param, grad: us[i]!.grad, m: us[i]!.slots.m! })),
        options,
      );
      at.forEach((i, j) => (verdicts[i] = { flags, index: j }));
    }
    return verdicts;
  }

  /**
   * A compiled step replays the same calls with each micro-step's options (learning rate, the
   * accumulation group's first and last micro-step); the guard runs natively, and its flags reach
   * the step's verdicts after each replay.
   */
  protected override replayCalls(us: readonly ReplayUpdate[]): ReplayCall[] {
    return this.#sets(us).map(({ options, at }) => ({ names: at.map((i) => us[i]!.name), attrs: tigerAttrs('Tiger.step', options) }));
  }

  /** The updates (their indices) grouped by the options they run with, in first-seen order. */
  #sets(us: readonly ReplayUpdate[]): { options: TigerUpdateOptions; at: number[] }[] {
    const sets = new Map<string, { options: TigerUpdateOptions; at: number[] }>();
    us.forEach((u, i) => {
      const o = this.#options(u);
      // the rest of the options are the step's, the same for every parameter
      const key = `${o.lr}|${o.rms}|${o.weightDecay}|${o.centre}|${u.device}`;
      const set = sets.get(key);
      if (set) set.at.push(i);
      else sets.set(key, { options: o, at: [i] });
    });
    return [...sets.values()];
  }
}

function checkClass(c: unknown, where: string): TigerParamClass {
  if (!TIGER_PARAM_CLASSES.includes(c as TigerParamClass)) {
    throw new ArgumentError(`Tiger: ${where} must be one of ${TIGER_PARAM_CLASSES.join(', ')}, got ${String(c)}`);
  }
  return c as TigerParamClass;
}
