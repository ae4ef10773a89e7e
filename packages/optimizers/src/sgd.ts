/** SGD as torch.optim.SGD: momentum (with dampening), Nesterov, coupled weight decay. */
import { ArgumentError, sgdUpdate } from '@kexue/core-cuda';

import { booleanOption, checkKeys, numberOption } from './options.js';
import { COMMON_OPTION_KEYS, Optimizer, type CommonOptions, type ParamUpdate } from './optimizer.js';

export interface SGDOptions extends CommonOptions {
  /** Default 1e-3 (torch ≥ 2.2's default). */
  learningRate?: number;
  /** μ; default 0 (no state at all). */
  momentum?: number;
  /** Default 0. */
  dampening?: number;
  /** Nesterov momentum (needs momentum > 0 and dampening 0). Default false. */
  nesterov?: boolean;
  /** Coupled L2: the gradient gets λ·θ added. Default 0. */
  weightDecay?: number;
}

/**
 * SGD: d = g + λθ; with momentum, buf ← d on a parameter's first step, else μ·buf + (1−dampening)·d,
 * and d ← d + μ·buf (Nesterov) or buf; θ ← θ − η·d. One float32 state per parameter with momentum,
 * none without.
 */
export class SGD extends Optimizer {
  readonly kind = 'sgd';
  readonly momentum: number;
  readonly dampening: number;
  readonly nesterov: boolean;

  constructor(options: SGDOptions = {}) {
    const opts = checkKeys(options, [...COMMON_OPTION_KEYS, 'momentum', 'dampening', 'nesterov'], 'SGD');
    super(opts, { learningRate: 1e-3, weightDecay: 0 }, 'SGD');
    this.momentum = numberOption(opts.momentum, 0, 'momentum', 'SGD', { min: 0 });
    this.dampening = numberOption(opts.dampening, 0, 'dampening', 'SGD', { min: 0, max: 1 });
    this.nesterov = booleanOption(opts.nesterov, false, 'nesterov', 'SGD');
    if (this.nesterov && (this.momentum === 0 || this.dampening !== 0)) {
      throw new ArgumentError('SGD: nesterov needs momentum > 0 and dampening 0');
    }
  }

  protected slotNames(): readonly string[] {
    return this.momentum === 0 ? [] : ['momentum'];
  }

  protected update(u: ParamUpdate): boolean {
    sgdUpdate(u.param, u.grad, u.slots.momentum ?? null, {
      lr: u.learningRate,
      momentum: this.momentum,
      dampening: this.dampening,
      nesterov: this.nesterov,
      weightDecay: u.weightDecay,
      first: u.paramStep === 0,
      gradScale: u.gradScale,
    });
    return true;
  }
}
