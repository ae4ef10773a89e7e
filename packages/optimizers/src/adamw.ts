/** AdamW as torch.optim.AdamW (non-amsgrad): two float32 states per parameter. */
import { adamwAttrs, adamwUpdateGroup, type AdamWUpdateOptions } from '@kexue/core-cuda';

import { checkKeys, frozenDefaults, numberOf } from './options.js';
import { Optimizer, optionKeys, type CommonOptions, type OptionsOf, type ParamUpdate, type ReplayCall, type UpdateNumbers } from './optimizer.js';

/** AdamW's options: the common ones and those of AdamW.defaults. */
export interface AdamWOptions extends CommonOptions, OptionsOf<typeof AdamW.defaults> {}

/**
 * AdamW with torch.optim.AdamW's defaults (AdamW.defaults) and arithmetic: θ ← θ·(1 − ηλ); m, v
 * moving averages; θ ← θ − η/(1−β1ᵗ)·m/(√v/√(1−β2ᵗ) + ε), t counted per parameter.
 */
export class AdamW extends Optimizer {
  /** torch.optim.AdamW's defaults; each entry's comment says what the option is. */
  static readonly defaults = frozenDefaults({
    learningRate: 1e-3,
    /** β1 of the first moment m. */
    beta1: 0.9,
    /** β2 of the second moment v. */
    beta2: 0.999,
    /** ε, added to the bias-corrected √v. */
    eps: 1e-8,
    /** λ, decoupled: θ ← θ·(1 − η·λ) before the Adam step. */
    weightDecay: 0.01,
  });

  readonly kind = 'adamw';
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;

  constructor(options: AdamWOptions = {}) {
    const opts = checkKeys(options, optionKeys(AdamW.defaults), 'AdamW');
    super(opts, AdamW.defaults, 'AdamW');
    this.beta1 = numberOf(opts, AdamW.defaults, 'beta1', 'AdamW', { min: 0, max: 1, maxExclusive: true });
    this.beta2 = numberOf(opts, AdamW.defaults, 'beta2', 'AdamW', { min: 0, max: 1, maxExclusive: true });
    this.eps = numberOf(opts, AdamW.defaults, 'eps', 'AdamW', { min: 0 });
  }

  protected slotNames(): readonly string[] {
    return ['m', 'v'];
  }

  /**
   * One native call per set of parameters that share their options (usually one or two sets: with
   * and without weight decay), not one per parameter: a GPU step's ~200 updates cost the host once.
   */
  protected updateGroup(us: readonly ParamUpdate[]): boolean[] {
    for (const set of this.#sets(us)) {
      adamwUpdateGroup(
        set.map((x) => ({ param: x.param, grad: x.grad, m: x.slots.m!, v: x.slots.v! })),
        this.#options(set[0]!),
      );
    }
    return us.map(() => true);
  }

  /** Its updates always apply, so a compiled step replays them with each step's numbers. */
  protected override replayCalls(us: readonly UpdateNumbers[]): ReplayCall[] {
    return this.#sets(us).map((set) => ({ names: set.map((u) => u.name), attrs: adamwAttrs('AdamW.step', this.#options(set[0]!)) }));
  }

  /** The updates grouped by the options they run with, in first-seen order. */
  #sets<U extends UpdateNumbers>(us: readonly U[]): U[][] {
    const sets = new Map<string, U[]>();
    for (const u of us) {
      const key = `${u.learningRate}|${u.weightDecay}|${u.paramStep}|${u.gradScale}|${u.device}`;
      const set = sets.get(key);
      if (set) set.push(u);
      else sets.set(key, [u]);
    }
    return [...sets.values()];
  }

  #options(u: UpdateNumbers): AdamWUpdateOptions {
    return { lr: u.learningRate, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: u.weightDecay, step: u.paramStep + 1, gradScale: u.gradScale };
  }
}
