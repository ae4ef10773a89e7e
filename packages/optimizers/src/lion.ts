/** Lion (ALGORITHMS.md §1.9): the sign of an interpolated momentum; one float32 state per parameter. */
import { lionAttrs, lionUpdate, type LionUpdateOptions } from '@kexue/core-cuda';

import { checkKeys, frozenDefaults, numberOf } from './options.js';
import { Optimizer, optionKeys, type CommonOptions, type OptionsOf, type ParamUpdate, type ReplayCall, type UpdateNumbers } from './optimizer.js';

/** bert4keras LionV2's defaults, Lion's own (Lion.defaults); each entry's comment says what the option is. */
export const LION_V2_DEFAULTS = frozenDefaults({
  learningRate: 3e-4,
  /** β1 of the interpolation c = β1·m + (1−β1)·g (LionV2's; the paper's is LION_PAPER_DEFAULTS.beta1). */
  beta1: 0.95,
  /** β2 of the momentum m ← β2·m + (1−β2)·g. */
  beta2: 0.98,
  /** λ, decoupled: θ ← θ − η·(sign(c) + λ·θ) (LionV2 and the paper's code have none). */
  weightDecay: 0,
});
/** The paper's (and lucidrains/lion-pytorch's) defaults: `new Lion(LION_PAPER_DEFAULTS)`. */
export const LION_PAPER_DEFAULTS = frozenDefaults({ learningRate: 1e-4, beta1: 0.9, beta2: 0.99, weightDecay: 0 });

/** Lion's options: the common ones and those of Lion.defaults. */
export interface LionOptions extends CommonOptions, OptionsOf<typeof LION_V2_DEFAULTS> {}

/**
 * Lion: c = β1·m + (1−β1)·g; θ ← θ − η·(sign(c) + λ·θ); m ← β2·m + (1−β2)·g. The same learning rate
 * for every parameter (use groups to vary it). No gradient accumulation inside (it would need a
 * second buffer): accumulate gradients before step().
 */
export class Lion extends Optimizer {
  /** bert4keras LionV2's defaults (LION_V2_DEFAULTS). */
  static readonly defaults = LION_V2_DEFAULTS;

  readonly kind = 'lion';
  readonly beta1: number;
  readonly beta2: number;

  constructor(options: LionOptions = {}) {
    const opts = checkKeys(options, optionKeys(Lion.defaults), 'Lion');
    super(opts, Lion.defaults, 'Lion');
    this.beta1 = numberOf(opts, Lion.defaults, 'beta1', 'Lion', { min: 0, max: 1 });
    this.beta2 = numberOf(opts, Lion.defaults, 'beta2', 'Lion', { min: 0, max: 1 });
  }

  protected slotNames(): readonly string[] {
    return ['m'];
  }

  /** One native call per parameter (core-cuda has no group op for Lion); every update is applied. */
  protected updateGroup(us: readonly ParamUpdate[]): boolean[] {
    return us.map((u) => {
      lionUpdate(u.param, u.grad, u.slots.m!, this.#options(u));
      return true;
    });
  }

  /** Its updates always apply, so a compiled step replays them with each step's learning rate. */
  protected override replayCalls(us: readonly UpdateNumbers[]): ReplayCall[] {
    return us.map((u) => ({ names: [u.name], attrs: lionAttrs('Lion.step', this.#options(u)) }));
  }

  #options(u: UpdateNumbers): LionUpdateOptions {
    return { lr: u.learningRate, beta1: this.beta1, beta2: this.beta2, weightDecay: u.weightDecay, gradScale: u.gradScale };
  }
}
