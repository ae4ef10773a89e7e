/** Lion (ALGORITHMS.md §1.9): the sign of an interpolated momentum; one float32 state per parameter. */
import { lionUpdate } from '@kexue/core-cuda';

import { checkKeys, numberOption } from './options.js';
import { COMMON_OPTION_KEYS, Optimizer, type CommonOptions, type ParamUpdate } from './optimizer.js';

export interface LionOptions extends CommonOptions {
  /** Default 3e-4 (bert4keras LionV2). */
  learningRate?: number;
  /** Default 0.95 (LionV2; the paper's 0.9). */
  beta1?: number;
  /** Default 0.98 (LionV2; the paper's 0.99). */
  beta2?: number;
  /** λ, decoupled: θ ← θ − η·(sign(c) + λ·θ). Default 0 (LionV2 and the paper's code). */
  weightDecay?: number;
}

/** bert4keras LionV2's defaults, Lion's own. */
export const LION_V2_DEFAULTS = Object.freeze({ learningRate: 3e-4, beta1: 0.95, beta2: 0.98, weightDecay: 0 });
/** The paper's (and lucidrains/lion-pytorch's) defaults: `new Lion(LION_PAPER_DEFAULTS)`. */
export const LION_PAPER_DEFAULTS = Object.freeze({ learningRate: 1e-4, beta1: 0.9, beta2: 0.99, weightDecay: 0 });

/**
 * Lion: c = β1·m + (1−β1)·g; θ ← θ − η·(sign(c) + λ·θ); m ← β2·m + (1−β2)·g. The same learning rate
 * for every parameter (use groups to vary it). No gradient accumulation inside (it would need a
 * second buffer): accumulate gradients before step().
 */
export class Lion extends Optimizer {
  readonly kind = 'lion';
  readonly beta1: number;
  readonly beta2: number;

  constructor(options: LionOptions = {}) {
    const opts = checkKeys(options, [...COMMON_OPTION_KEYS, 'beta1', 'beta2'], 'Lion');
    super(opts, LION_V2_DEFAULTS, 'Lion');
    this.beta1 = numberOption(opts.beta1, LION_V2_DEFAULTS.beta1, 'beta1', 'Lion', { min: 0, max: 1 });
    this.beta2 = numberOption(opts.beta2, LION_V2_DEFAULTS.beta2, 'beta2', 'Lion', { min: 0, max: 1 });
  }

  protected slotNames(): readonly string[] {
    return ['m'];
  }

  protected update(u: ParamUpdate): boolean {
    lionUpdate(u.param, u.grad, u.slots.m!, {
      lr: u.learningRate,
      beta1: this.beta1,
      beta2: this.beta2,
      weightDecay: u.weightDecay,
      gradScale: u.gradScale,
    });
    return true;
  }
}
