/**
 * The VAE of the vMF-VAE article (ALGORITHMS.md §5.3) and its Gaussian baseline, as the Keras MNIST
 * example builds them: encoder x → Dense(hidden, ReLU) → Dense(latent), decoder z →
 * Dense(hidden, ReLU) → Dense(pixels, sigmoid); Keras's Dense initialisation (Glorot uniform
 * kernels, zero biases).
 *
 * - vmf: μ(x) = L2-normalise(Dense(h)) (x / sqrt(Σx² + 1e-12); Keras's `l2_normalize` takes
 *   max(Σx², 1e-12), the same value for any vector longer than 1e-5),
 *   z ~ vMF(μ, κ) with κ fixed, drawn by kx.vmf.sample (w held fixed, gradients through wμ and ν);
 *   the loss is the reconstruction alone: the KL to the uniform prior is the constant
 *   kx.vmf.klToUniform(d, κ), which is why the latent cannot collapse onto the prior.
 * - gaussian: mean and log-variance heads, z = m + e^{logvar/2}ε, and the KL to N(0, I) in the loss.
 *
 * The reconstruction term is Σ over pixels of the binary cross-entropy of the targets (pixels / 255)
 * against sigmoid(logits), computed from the logits (softplus(l) − x·l) so that it stays finite.
 */
import { add, div, exp, log, mean, mul, neg, randomNormal, relu, scalar, sigmoid, sqrt, sub, sum, vmf, type Philox, type RandomKey, type Tensor } from '@kexue/core-cuda';

import { glorotUniform } from '../nn/init.js';
import { Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { InitRng } from '../nn/random.js';

export type LatentKind = 'vmf' | 'gaussian';

export interface VaeConfig {
  kind: LatentKind;
  /** Pixels of an image (784 for 28×28). */
  pixels: number;
  hidden: number;
  latent: number;
  /** The vMF concentration κ (vmf only). */
  kappa: number;
}

/** What a forward pass gives: the decoder's logits and the per-batch mean terms of the loss. */
export interface VaeOutput {
  logits: Tensor;
  /** Mean over the batch of Σ_pixels BCE. */
  bce: Tensor;
  /** Mean KL per image: the vMF constant as a scalar, or the Gaussian's. */
  kl: Tensor;
  /** What is minimised: bce for vmf (the KL is constant), bce + kl for gaussian. */
  loss: Tensor;
}

/** Keras's Dense: Glorot-uniform kernel, zero bias. */
function dense(inputs: number, outputs: number, rng: InitRng): Linear {
  return new Linear(inputs, outputs, { init: glorotUniform(), rng });
}

/** Σ over the last axis of BCE(targets, sigmoid(logits)) = softplus(l) − x·l, softplus(l) = relu(l) + ln(1 + e^{−|l|}). */
export function bceFromLogits(logits: Tensor, targets: Tensor): Tensor {
  const absL = add(relu(logits), relu(neg(logits)));
  const softplus = add(relu(logits), log(add(exp(neg(absL)), 1)));
  return sum(sub(softplus, mul(targets, logits)), -1);
}

/** Unit vectors along the last axis: x / sqrt(Σx² + 1e-12). */
export function l2Normalize(x: Tensor): Tensor {
  return div(x, sqrt(add(sum(mul(x, x), -1, true), 1e-12)));
}

export class VaeModel extends Module {
  readonly config: VaeConfig;
  readonly encoderHidden: Linear;
  readonly encoderMean: Linear;
  readonly encoderLogVar: Linear | null;
  readonly decoderHidden: Linear;
  readonly decoderOut: Linear;

  constructor(config: VaeConfig, seeds: { seed: number }) {
    super();
    this.config = config;
    const rng = new InitRng(seeds.seed);
    this.encoderHidden = this.addModule('encoder_hidden', dense(config.pixels, config.hidden, rng));
    this.encoderMean = this.addModule('encoder_mean', dense(config.hidden, config.latent, rng));
    this.encoderLogVar = config.kind === 'gaussian' ? this.addModule('encoder_log_var', dense(config.hidden, config.latent, rng)) : null;
    this.decoderHidden = this.addModule('decoder_hidden', dense(config.latent, config.hidden, rng));
    this.decoderOut = this.addModule('decoder_out', dense(config.hidden, config.pixels, rng));
  }

  /** The posterior's parameters for images x [B, pixels] in [0, 1]: μ on the sphere (vmf), or mean and log-variance (gaussian). */
  encode(x: Tensor): { mean: Tensor; logVar: Tensor | null } {
    const h = relu(this.encoderHidden.forward(this.#computeDtype(x)));
    const m = this.encoderMean.forward(h);
    if (this.encoderLogVar) return { mean: m, logVar: this.encoderLogVar.forward(h) };
    return { mean: l2Normalize(m), logVar: null };
  }

  /** The decoder's logits [B, pixels] for latents z [B, latent]; sigmoid of them is the image. */
  decode(z: Tensor): Tensor {
    return this.decoderOut.forward(relu(this.decoderHidden.forward(this.#computeDtype(z))));
  }

  /** x in the dtype the weights compute in (a mixed-precision run's half type). */
  #computeDtype(x: Tensor): Tensor {
    const dtype = this.encoderHidden.weight.dtype;
    return x.dtype === dtype ? x : x.cast(dtype);
  }

  /** Decoded images [B, pixels] in [0, 1]. */
  generate(z: Tensor): Tensor {
    return sigmoid(this.decode(z));
  }

  /**
   * A latent per image: z ~ posterior (w by `sampler` for vmf), or the posterior's centre when
   * `rng` is null (μ for vmf, the mean for gaussian).
   */
  latent(x: Tensor, sampler: vmf.WSampler, rng: RandomKey | Philox | null): Tensor {
    const { mean: m, logVar } = this.encode(x);
    return this.#draw(m, logVar, sampler, rng);
  }

  #draw(m: Tensor, logVar: Tensor | null, sampler: vmf.WSampler, rng: RandomKey | Philox | null): Tensor {
    if (rng === null) return m;
    if (logVar === null) return vmf.sample(m, this.config.kappa, sampler, rng);
    const eps = randomNormal(m.shape, rng, { device: m.device });
    return add(m, mul(exp(mul(logVar, 0.5)), eps.dtype === m.dtype ? eps : eps.cast(m.dtype)));
  }

  /** The loss terms of images x [B, pixels] in [0, 1]: z drawn from the posterior with rng (or its centre when null). */
  forward(x: Tensor, sampler: vmf.WSampler, rng: RandomKey | Philox | null): VaeOutput {
    const { mean: m, logVar } = this.encode(x);
    const z = this.#draw(m, logVar, sampler, rng);
    let kl: Tensor;
    if (logVar === null) {
      kl = scalar(vmf.klToUniform(this.config.latent, this.config.kappa), { device: m.device });
    } else {
      // KL(N(m, σ²) ‖ N(0, I)) = −½ Σ (1 + log σ² − m² − σ²)
      kl = mean(mul(sum(sub(add(logVar, 1), add(mul(m, m), exp(logVar))), -1), -0.5));
    }
    const logits = this.decode(z);
    const bce = mean(bceFromLogits(logits, this.#computeDtype(x)));
    return { logits, bce, kl, loss: logVar === null ? bce : add(bce, kl) };
  }
}
