/**
 * Loss scaling for half-precision training. Static (the seed's way, ALGORITHMS.md §8): the loss is
 * multiplied by a constant and the gradients divided back inside the optimizer's fused update.
 * Dynamic (as torch.cuda.amp.GradScaler): a step whose gradients hold NaN/Inf is skipped and the
 * scale backs off; after growthInterval good steps in a row the scale grows.
 */
import * as kx from '@kexue/core-cuda';
import { ArgumentError, type Tensor } from '@kexue/core-cuda';

import { booleanOption, checkKeys, numberOption } from './options.js';
import type { NamedTensors, Optimizer, StepResult } from './optimizer.js';

export interface LossScalerOptions {
  /** Grow/back off the scale (default false: a constant scale). */
  dynamic?: boolean;
  /** The (initial) scale: default 2^16 dynamic, 1024 static. */
  scale?: number;
  /** Dynamic: factor after growthInterval finite steps (default 2). */
  growthFactor?: number;
  /** Dynamic: factor after a non-finite step (default 0.5). */
  backoffFactor?: number;
  /** Dynamic: finite steps between growths (default 2000). */
  growthInterval?: number;
  /** Static: divide the gradients by the scale before the update (default true; Tiger and Lion do not care). */
  unscale?: boolean;
}

/** The outcome of LossScaler.step. */
export interface ScaledStepResult {
  /** False when the step was skipped for non-finite gradients (dynamic only). */
  applied: boolean;
  /** The scale used for this step's loss. */
  scale: number;
  /** The optimizer's result, when it ran. */
  result: StepResult | null;
}

export interface LossScalerState {
  scale: number;
  goodSteps: number;
}

export class LossScaler {
  readonly dynamic: boolean;
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;
  readonly unscale: boolean;
  #scale: number;
  #goodSteps = 0;

  constructor(options: LossScalerOptions = {}) {
    const w = 'LossScaler';
    const o = checkKeys(options, ['dynamic', 'scale', 'growthFactor', 'backoffFactor', 'growthInterval', 'unscale'], w);
    this.dynamic = booleanOption(o.dynamic, false, 'dynamic', w);
    this.#scale = numberOption(o.scale, this.dynamic ? 2 ** 16 : 1024, 'scale', w, { min: 0, minExclusive: true });
    this.growthFactor = numberOption(o.growthFactor, 2, 'growthFactor', w, { min: 1 });
    this.backoffFactor = numberOption(o.backoffFactor, 0.5, 'backoffFactor', w, { min: 0, max: 1, minExclusive: true });
    this.growthInterval = numberOption(o.growthInterval, 2000, 'growthInterval', w, { min: 1, integer: true });
    this.unscale = booleanOption(o.unscale, true, 'unscale', w);
    if (!this.dynamic && (o.growthFactor !== undefined || o.backoffFactor !== undefined || o.growthInterval !== undefined)) {
      throw new ArgumentError(`${w}: growthFactor, backoffFactor and growthInterval need dynamic: true`);
    }
  }

  /** The current scale. */
  get scale(): number {
    return this.#scale;
  }

  /**
   * loss × scale (a new tensor; call it inside the function given to valueAndGrad). Passing `scale`
   * as valueAndGrad's outputGradient instead gives the same gradients and keeps the fused
   * cross-entropy gradient (the trainer does that).
   */
  scaleLoss(loss: Tensor): Tensor {
    return kx.mul(loss, this.#scale);
  }

  /**
   * Steps the optimizer with gradients of a scaled loss, dividing them by the scale inside the
   * fused update. Dynamic: skips the whole step when any gradient is non-finite and backs off.
   * `gradNorm`: the global norm of the (scaled) gradients when the caller has it already.
   */
  step(optimizer: Optimizer, params: NamedTensors, grads: NamedTensors, options: { gradNorm?: number } = {}): ScaledStepResult {
    const scale = this.#scale;
    const { gradNorm } = checkKeys(options, ['gradNorm'], 'LossScaler.step') as { gradNorm?: unknown };
    if (gradNorm !== undefined && typeof gradNorm !== 'number') throw new ArgumentError('LossScaler.step: gradNorm must be a number');
    if (!this.dynamic) {
      const result = optimizer.step(params, grads, { gradScale: this.unscale ? 1 / scale : 1, ...(gradNorm !== undefined ? { gradNorm } : {}) });
      return { applied: true, scale, result };
    }
    const norm = gradNorm ?? kx.globalNorm(Object.keys(grads).map((k) => grads[k]!));
    if (!Number.isFinite(norm)) {
      this.#scale = scale * this.backoffFactor;
      this.#goodSteps = 0;
      return { applied: false, scale, result: null };
    }
    const result = optimizer.step(params, grads, { gradScale: 1 / scale, gradNorm: norm });
    this.#goodSteps += 1;
    if (this.#goodSteps >= this.growthInterval) {
      this.#scale = scale * this.growthFactor;
      this.#goodSteps = 0;
    }
    return { applied: true, scale, result };
  }

  /** The scale and the count of good steps, for checkpoints. */
  state(): LossScalerState {
    return { scale: this.#scale, goodSteps: this.#goodSteps };
  }

  loadState(state: LossScalerState): void {
    const w = 'LossScaler.loadState';
    const o = checkKeys(state, ['scale', 'goodSteps'], w);
    const scale = numberOption(o.scale, NaN, 'scale', w, { min: 0, minExclusive: true });
    const good = numberOption(o.goodSteps, 0, 'goodSteps', w, { min: 0, integer: true });
    if (Number.isNaN(scale)) throw new ArgumentError(`${w}: scale is required`);
    this.#scale = scale;
    this.#goodSteps = good;
  }
}
