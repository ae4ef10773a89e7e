/**
 * The basic layers: Linear, Embedding, LayerNorm, RMSNorm, Dropout. Parameter names follow
 * PyTorch/Hugging Face (weight, bias); a Linear's weight is [out, in].
 */
import {
  ArgumentError,
  Philox,
  addLayerNorm,
  biasGelu,
  dropout,
  embedding,
  gelu,
  isRecordingGradients,
  keep,
  layerNorm,
  matmul,
  matmulPacked,
  packWeight,
  rmsNorm,
  type PackedWeight,
  type Tensor,
} from '@kexue/core-cuda';

import { onesInit, truncatedNormal, zerosInit, type Initializer } from './init.js';
import { Module } from './module.js';
import { InitRng } from './random.js';

function checkSize(v: number, what: string): number {
  if (!Number.isInteger(v) || v <= 0) throw new ArgumentError(`${what} must be a positive integer, got ${String(v)}`);
  return v;
}

export interface LinearOptions {
  /** Default true. */
  bias?: boolean;
  /** Kernel initialiser; default truncatedNormal(0.02). */
  init?: Initializer;
  rng: InitRng;
}

/**
 * y = x·Wᵀ + b for x [..., in]; weight [out, in], bias [out].
 *
 * Inference (eval mode, no gradient tape) multiplies by a copy of the weight packed once for the
 * CPU's product kernels (packWeight; on CUDA the weight itself): at batch 1 a product otherwise
 * spends as long repacking the weight as multiplying. The copy is made on first use, made again when the weight
 * changed (an optimizer step, a loaded tensor), and dropped by train() and dispose(); it costs one
 * more copy of the weight's memory while the layer is in eval mode.
 */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly hasBias: boolean;
  #packed: PackedWeight | null = null;

  constructor(inFeatures: number, outFeatures: number, options: LinearOptions) {
    super();
    this.inFeatures = checkSize(inFeatures, 'Linear: inFeatures');
    this.outFeatures = checkSize(outFeatures, 'Linear: outFeatures');
    this.hasBias = options.bias ?? true;
    this.addParameter('weight', { shape: [outFeatures, inFeatures], init: options.init ?? truncatedNormal(0.02), rng: options.rng });
    if (this.hasBias) this.addParameter('bias', { shape: [outFeatures], init: zerosInit, rng: options.rng });
  }

  get weight(): Tensor {
    return this.p('weight');
  }

  forward(x: Tensor): Tensor {
    return this.#product(x, this.hasBias ? this.p('bias') : undefined);
  }

  /** gelu(x·Wᵀ + b), the bias added inside the fused biasGelu (whose backward also gives dbias). */
  forwardGelu(x: Tensor, approximate: 'none' | 'tanh'): Tensor {
    const h = this.#product(x, undefined);
    return this.hasBias ? biasGelu(h, this.p('bias'), { approximate }) : gelu(h, { approximate });
  }

  override train(mode = true): this {
    if (mode) this.#dropPacked();
    return super.train(mode);
  }

  override dispose(): void {
    this.#dropPacked();
    super.dispose();
  }

  #product(x: Tensor, bias: Tensor | undefined): Tensor {
    const w = this.p('weight');
    if (this.training || isRecordingGradients()) return matmul(x, w, { transB: true, bias });
    if (this.#packed?.source !== w || !this.#packed.isCurrent) {
      this.#dropPacked();
      const packed = packWeight(w, { transB: true });
      if (packed.bytes) keep(packed.bytes); // the layer's, not the caller's tidy scope's
      this.#packed = packed;
    }
    return matmulPacked(x, this.#packed, { bias });
  }

  #dropPacked(): void {
    this.#packed?.dispose();
    this.#packed = null;
  }
}

/** Rows of a [num, dim] table by int32 ids. */
export class Embedding extends Module {
  constructor(num: number, dim: number, options: { init?: Initializer; rng: InitRng }) {
    super();
    this.addParameter('weight', { shape: [checkSize(num, 'Embedding: num'), checkSize(dim, 'Embedding: dim')], init: options.init ?? truncatedNormal(0.02), rng: options.rng });
  }

  get weight(): Tensor {
    return this.p('weight');
  }

  forward(ids: Tensor): Tensor {
    return embedding(ids, this.p('weight'));
  }
}

/** Layer normalisation over the last axis with weight (γ) and bias (β); eps default 1e-12 (BERT's). */
export class LayerNorm extends Module {
  readonly eps: number;

  constructor(dim: number, options: { eps?: number } = {}) {
    super();
    this.eps = options.eps ?? 1e-12;
    const rng = new InitRng(0);
    this.addParameter('weight', { shape: [checkSize(dim, 'LayerNorm: dim')], init: onesInit, rng });
    this.addParameter('bias', { shape: [dim], init: zerosInit, rng });
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.p('weight'), this.p('bias'), this.eps);
  }

  /** LayerNorm(x + residual) in one fused pass (the same values as forward(add(x, residual))). */
  forwardResidual(x: Tensor, residual: Tensor): Tensor {
    const { y, sum } = addLayerNorm(x, residual, this.p('weight'), this.p('bias'), this.eps);
    sum.dispose();
    return y;
  }
}

/** RMS normalisation (T5LayerNorm): weight only; eps default 1e-6. */
export class RMSNorm extends Module {
  readonly eps: number;

  constructor(dim: number, options: { eps?: number } = {}) {
    super();
    this.eps = options.eps ?? 1e-6;
    this.addParameter('weight', { shape: [checkSize(dim, 'RMSNorm: dim')], init: onesInit, rng: new InitRng(0) });
  }

  get weight(): Tensor {
    return this.p('weight');
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.p('weight'), this.eps);
  }
}

/**
 * Inverted dropout while training (masks from the shared Philox generator, so a seeded run is
 * repeatable), the identity in eval mode or with p = 0.
 */
export class Dropout extends Module {
  readonly rate: number;
  readonly rng: Philox;

  constructor(rate: number, rng: Philox) {
    super();
    if (typeof rate !== 'number' || !(rate >= 0 && rate < 1)) throw new ArgumentError(`Dropout: rate must be in [0, 1), got ${String(rate)}`);
    this.rate = rate;
    this.rng = rng;
  }

  forward(x: Tensor): Tensor {
    return this.training && this.rate > 0 ? dropout(x, this.rate, this.rng) : x;
  }
}
