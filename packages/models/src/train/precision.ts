/**
 * The mixed-precision policy (ARCHITECTURE.md §3, ALGORITHMS.md §8). The weights and the optimizer
 * state stay float32 (the masters, which the optimizer updates); each step the forward sees every
 * parameter cast once to the compute dtype (kx.cast is differentiable, so the gradients arrive in
 * float32 for the masters), activations flow in the compute dtype, the kernels accumulate norms,
 * softmax and losses in float32, and the loss is float32. Loss scaling: float16 defaults to the
 * dynamic LossScaler (a step with non-finite gradients is skipped and the scale backs off),
 * bfloat16 (float32's exponent range) and float32 to none.
 */
import { ArgumentError, cast, isFloating, type Tensor } from '@kexue/core-cuda';
import { LossScaler, type LossScalerOptions } from '@kexue/optimizers';

import type { Module } from '../nn/module.js';

export type ComputeDType = 'float32' | 'float16' | 'bfloat16';

/** The short names of the config and the CLI (`precision=bf16`). */
export type PrecisionName = 'fp32' | 'fp16' | 'bf16';

export const PRECISION_NAMES: Readonly<Record<PrecisionName, ComputeDType>> = { fp32: 'float32', fp16: 'float16', bf16: 'bfloat16' };

/** 'auto' (dynamic for float16, none otherwise), 'dynamic', 'none', or a constant scale > 0. */
export type LossScaleSetting = 'auto' | 'dynamic' | 'none' | number;

export interface PrecisionOptions {
  /** The compute dtype, or its short name; default float32. */
  compute?: ComputeDType | PrecisionName;
  /** Default 'auto'. */
  lossScale?: LossScaleSetting;
  /** The dynamic scaler's settings (defaults: scale 2^16, ×2 after 2000 finite steps, ×0.5 after an overflow). */
  dynamic?: Pick<LossScalerOptions, 'scale' | 'growthFactor' | 'backoffFactor' | 'growthInterval'>;
}

/** The compute dtype of a name (float32, float16, bfloat16 or fp32, fp16, bf16); E_ARG otherwise. */
export function parsePrecision(value: unknown): ComputeDType {
  if (typeof value === 'string') {
    if (value in PRECISION_NAMES) return PRECISION_NAMES[value as PrecisionName];
    if (Object.values(PRECISION_NAMES).includes(value as ComputeDType)) return value as ComputeDType;
  }
  throw new ArgumentError(`precision must be fp32, fp16 or bf16 (or float32, float16, bfloat16), got ${JSON.stringify(value)}`);
}

/** A loss-scale setting from a config value ('auto', 'dynamic', 'none', or a number > 0, also as a string); E_ARG otherwise. */
export function parseLossScale(value: unknown): LossScaleSetting {
  if (value === 'auto' || value === 'dynamic' || value === 'none') return value;
  const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
  if (Number.isFinite(n) && n > 0) return n;
  throw new ArgumentError(`loss_scale must be auto, dynamic, none or a number > 0, got ${JSON.stringify(value)}`);
}

export class PrecisionPolicy {
  readonly compute: ComputeDType;
  /** The resolved loss scaling: dynamic, a constant, or none (null). */
  readonly lossScale: 'dynamic' | number | null;
  readonly #dynamic: PrecisionOptions['dynamic'];

  constructor(options: PrecisionOptions = {}) {
    if (options === null || typeof options !== 'object') throw new ArgumentError('PrecisionPolicy: options must be an object');
    this.compute = parsePrecision(options.compute ?? 'float32');
    const setting = parseLossScale(options.lossScale ?? 'auto');
    this.lossScale = setting === 'auto' ? (this.compute === 'float16' ? 'dynamic' : null) : setting === 'none' ? null : setting;
    if (options.dynamic !== undefined && this.lossScale !== 'dynamic') throw new ArgumentError('PrecisionPolicy: dynamic settings need dynamic loss scaling');
    this.#dynamic = options.dynamic;
    // fail now, not at the first step
    this.createScaler();
  }

  /** The policy of a run's config: `precision` (default fp32) and `loss_scale` (default auto). */
  static fromConfig(c: { precision?: unknown; loss_scale?: unknown }): PrecisionPolicy {
    return new PrecisionPolicy({ compute: parsePrecision(c.precision ?? 'fp32'), lossScale: parseLossScale(c.loss_scale ?? 'auto') });
  }

  /** 'bf16 (loss scale dynamic)' and the like, for logs. */
  describe(): string {
    const name = Object.entries(PRECISION_NAMES).find(([, d]) => d === this.compute)![0];
    return this.lossScale === null ? name : `${name} (loss scale ${this.lossScale})`;
  }

  /**
   * Runs fn (a forward and its loss) with the module's floating parameters cast to the compute
   * dtype; returns the loss as float32. Under float32 it is fn itself: no casts, the same bits.
   * Call it inside valueAndGrad, which owns the casts and differentiates through them.
   */
  forward(module: Module, fn: () => Tensor): Tensor {
    if (this.compute === 'float32') return fn();
    const loss = module.withParameterView((master) => (isFloating(master.dtype) ? cast(master, this.compute) : master), fn);
    return cast(loss, 'float32');
  }

  /** A fresh loss scaler for a run under this policy, or null when it scales nothing. */
  createScaler(): LossScaler | null {
    if (this.lossScale === null) return null;
    if (this.lossScale === 'dynamic') return new LossScaler({ ...this.#dynamic, dynamic: true });
    return new LossScaler({ scale: this.lossScale });
  }
}
