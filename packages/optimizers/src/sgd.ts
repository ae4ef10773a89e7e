/** SGD as torch.optim.SGD: momentum (with dampening), Nesterov, coupled weight decay. */
import { ArgumentError, sgdAttrs, sgdUpdate, type SgdUpdateOptions } from '@kexue/core-cuda';

import { booleanOption, checkKeys, frozenDefaults, numberOf } from './options.js';
import { Optimizer, optionKeys, type CommonOptions, type OptionsOf, type ParamUpdate, type ReplayCall, type UpdateNumbers } from './optimizer.js';

/** SGD's options: the common ones and those of SGD.defaults. */
export interface SGDOptions extends CommonOptions, OptionsOf<typeof SGD.defaults> {}

/**
 * SGD: d = g + λθ; with momentum, buf ← d on a parameter's first step, else μ·buf + (1−dampening)·d,
 * and d ← d + μ·buf (Nesterov) or buf; θ ← θ − η·d. One float32 state per parameter with momentum,
 * none without.
 */
export class SGD extends Optimizer {
  /** torch.optim.SGD's defaults (its learning rate since torch 2.2); each entry's comment says what the option is. */
  static readonly defaults = frozenDefaults({
    learningRate: 1e-3,
    /** μ (0: no state at all). */
    momentum: 0,
    dampening: 0,
    /** Nesterov momentum (needs momentum > 0 and dampening 0). */
    nesterov: false,
    /** λ, coupled (L2): the gradient gets λ·θ added. */
    weightDecay: 0,
  });

  readonly kind = 'sgd';
  readonly momentum: number;
  readonly dampening: number;
  readonly nesterov: boolean;

  constructor(options: SGDOptions = {}) {
    const opts = checkKeys(options, optionKeys(SGD.defaults), 'SGD');
    super(opts, SGD.defaults, 'SGD');
    this.momentum = numberOf(opts, SGD.defaults, 'momentum', 'SGD', { min: 0 });
    this.dampening = numberOf(opts, SGD.defaults, 'dampening', 'SGD', { min: 0, max: 1 });
    this.nesterov = booleanOption(opts.nesterov, SGD.defaults.nesterov, 'nesterov', 'SGD');
    if (this.nesterov && (this.momentum === 0 || this.dampening !== 0)) {
      throw new ArgumentError('SGD: nesterov needs momentum > 0 and dampening 0');
    }
  }

  protected slotNames(): readonly string[] {
    return this.momentum === 0 ? [] : ['momentum'];
  }

  /** One native call per parameter (core-cuda has no group op for SGD); every update is applied. */
  protected updateGroup(us: readonly ParamUpdate[]): boolean[] {
    return us.map((u) => {
      sgdUpdate(u.param, u.grad, u.slots.momentum ?? null, this.#options(u));
      return true;
    });
  }

  /** Its updates always apply, so a compiled step replays them with each step's learning rate and first-step rule. */
  protected override replayCalls(us: readonly UpdateNumbers[]): ReplayCall[] {
    return us.map((u) => ({ names: [u.name], attrs: sgdAttrs('SGD.step', this.#options(u)) }));
  }

  #options(u: UpdateNumbers): SgdUpdateOptions {
    return {
      lr: u.learningRate,
      momentum: this.momentum,
      dampening: this.dampening,
      nesterov: this.nesterov,
      weightDecay: u.weightDecay,
      first: u.paramStep === 0,
      gradScale: u.gradScale,
    };
  }
}
