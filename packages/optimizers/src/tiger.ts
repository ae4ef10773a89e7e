/**
 * Tiger ("tight-fisted" optimizer, ALGORITHMS.md §1): sign of a momentum, one float32 state tensor
 * per parameter, gradient accumulation folded into the momentum, per-tensor / per-row RMS learning
 * rates, and the non-finite guard. One fused native kernel per parameter per micro-step.
 */
import { ArgumentError, tigerUpdateGroup, type Tensor, type TigerUpdateOptions } from '@kexue/core-cuda';

import { checkKeys, numberOption } from './options.js';
import { COMMON_OPTION_KEYS, Optimizer, type CommonOptions, type ParamUpdate, type UpdateVerdict } from './optimizer.js';
import { TIGER_PARAM_CLASSES, tigerParamClass, type ParamClassOption, type TigerParamClass } from './param-class.js';

export interface TigerOptions extends CommonOptions {
  /** α, the global relative learning rate (default 1e-3). */
  learningRate?: number;
  /** β (default 0.965; the blog's 0.945 for vision). */
  beta?: number;
  /** λ, decoupled and scaled by the parameter's lr (default 0.01; 0 for bias-like classes). */
  weightDecay?: number;
  /** k, micro-steps per update (default 1). */
  gradAccumSteps?: number;
  /** Multiplier of α by micro-step; default {0: 1} (constant). */
  schedule?: CommonOptions['schedule'];
  /** s in the non-finite guard θ ← (θ − c)·s + c (default 0.99). */
  shrinkRatio?: number;
  /** Classes given explicitly, overriding the name rule (tigerParamClass). */
  paramClass?: ParamClassOption;
}

const KEYS = [...COMMON_OPTION_KEYS, 'beta', 'gradAccumSteps', 'shrinkRatio', 'paramClass'];

/**
 * Tiger as published (tiger.py's defaults): learningRate 1e-3, beta 0.965, weightDecay 0.01,
 * gradAccumSteps 1, schedule {0: 1}, shrinkRatio 0.99. Each step() is one micro-step: the
 * parameters move on every gradAccumSteps-th call, and the schedule counts micro-steps. A
 * parameter whose gradient holds NaN or ±Inf keeps its momentum and is shrunk toward its centre
 * (reported in the step's `skipped`).
 */
export class Tiger extends Optimizer {
  readonly kind = 'tiger';
  readonly beta: number;
  readonly gradAccumSteps: number;
  readonly shrinkRatio: number;
  readonly #paramClass: ParamClassOption | undefined;

  constructor(options: TigerOptions = {}) {
    const opts = checkKeys(options, KEYS, 'Tiger');
    super(opts, { learningRate: 1e-3, weightDecay: 0.01, schedule: { 0: 1 } }, 'Tiger');
    this.beta = numberOption(opts.beta, 0.965, 'beta', 'Tiger', { min: 0, max: 1 });
    this.gradAccumSteps = numberOption(opts.gradAccumSteps, 1, 'gradAccumSteps', 'Tiger', { min: 1, integer: true });
    this.shrinkRatio = numberOption(opts.shrinkRatio, 0.99, 'shrinkRatio', 'Tiger', { min: 0, max: 1 });
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

  protected update(u: ParamUpdate): UpdateVerdict {
    return this.updateAll([u])[0]!;
  }

  /** The native options of one parameter's micro-step (its class sets lr, rms, decay, centre). */
  #options(u: ParamUpdate): TigerUpdateOptions {
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
   * parameter group), not one per parameter. On the CPU the verdicts are read at once (the updates
   * have run); on a GPU they stay on the device for Optimizer.step to read later.
   */
  protected override updateAll(us: readonly ParamUpdate[]): UpdateVerdict[] {
    const sets = new Map<string, { options: TigerUpdateOptions; at: number[] }>();
    us.forEach((u, i) => {
      const o = this.#options(u);
      // the rest of the options are the step's, the same for every parameter
      const key = `${o.lr}|${o.rms}|${o.weightDecay}|${o.centre}|${u.param.device}`;
      const set = sets.get(key);
      if (set) set.at.push(i);
      else sets.set(key, { options: o, at: [i] });
    });
    const verdicts = new Array<UpdateVerdict>(us.length);
    for (const { options, at } of sets.values()) {
      const flags = tigerUpdateGroup(
        at.map((i) => ({ param: us[i]!.param, grad: us[i]!.grad, m: us[i]!.slots.m! })),
        options,
      );
      if (flags.device === 'cpu') {
        const read = flags.dataSync();
        at.forEach((i, j) => (verdicts[i] = read[j] === 1));
        flags.dispose();
      } else {
        at.forEach((i, j) => (verdicts[i] = { flags, index: j }));
      }
    }
    return verdicts;
  }
}

function checkClass(c: unknown, where: string): TigerParamClass {
  if (!TIGER_PARAM_CLASSES.includes(c as TigerParamClass)) {
    throw new ArgumentError(`Tiger: ${where} must be one of ${TIGER_PARAM_CLASSES.join(', ')}, got ${String(c)}`);
  }
  return c as TigerParamClass;
}
