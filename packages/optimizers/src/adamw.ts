/** AdamW as torch.optim.AdamW (non-amsgrad): two float32 states per parameter. */
import { adamwUpdateGroup } from '@kexue/core-cuda';

import { checkKeys, numberOption } from './options.js';
import { COMMON_OPTION_KEYS, Optimizer, type CommonOptions, type ParamUpdate } from './optimizer.js';

export interface AdamWOptions extends CommonOptions {
  /** Default 1e-3. */
  learningRate?: number;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled: θ ← θ·(1 − η·λ) before the Adam step. Default 0.01 (torch's). */
  weightDecay?: number;
}

/**
 * AdamW with torch.optim.AdamW's defaults and arithmetic: θ ← θ·(1 − ηλ); m, v moving averages;
 * θ ← θ − η/(1−β1ᵗ)·m/(√v/√(1−β2ᵗ) + ε), t counted per parameter.
 */
export class AdamW extends Optimizer {
  readonly kind = 'adamw';
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;

  constructor(options: AdamWOptions = {}) {
    const opts = checkKeys(options, [...COMMON_OPTION_KEYS, 'beta1', 'beta2', 'eps'], 'AdamW');
    super(opts, { learningRate: 1e-3, weightDecay: 0.01 }, 'AdamW');
    this.beta1 = numberOption(opts.beta1, 0.9, 'beta1', 'AdamW', { min: 0, max: 1, maxExclusive: true });
    this.beta2 = numberOption(opts.beta2, 0.999, 'beta2', 'AdamW', { min: 0, max: 1, maxExclusive: true });
    this.eps = numberOption(opts.eps, 1e-8, 'eps', 'AdamW', { min: 0 });
  }

  protected slotNames(): readonly string[] {
    return ['m', 'v'];
  }

  protected update(u: ParamUpdate): boolean {
    return this.updateAll([u])[0]!;
  }

  /**
   * One native call per set of parameters that share their options (usually one or two sets: with
   * and without weight decay), not one per parameter: a GPU step's ~200 updates cost the host once.
   */
  protected override updateAll(us: readonly ParamUpdate[]): boolean[] {
    const sets = new Map<string, ParamUpdate[]>();
    for (const u of us) {
      const key = `${u.learningRate}|${u.weightDecay}|${u.paramStep}|${u.gradScale}|${u.param.device}`;
      const set = sets.get(key);
      if (set) set.push(u);
      else sets.set(key, [u]);
    }
    for (const set of sets.values()) {
      const u = set[0]!;
      adamwUpdateGroup(
        set.map((x) => ({ param: x.param, grad: x.grad, m: x.slots.m!, v: x.slots.v! })),
        { lr: u.learningRate, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: u.weightDecay, step: u.paramStep + 1, gradScale: u.gradScale },
      );
    }
    return us.map(() => true);
  }
}
