/**
 * Position-wise feed-forward blocks: plain (wi → act → wo) and gated (act(wi_0 x) ⊙ wi_1 x → wo,
 * T5 v1.1 / mT5's gated-GELU). Child names follow T5 (wi, wi_0, wi_1, wo) unless given.
 */
import { mul, type Tensor } from '@kexue/core-cuda';

import { activation } from './activations.js';
import type { Initializer } from './init.js';
import { type Dropout, Linear } from './layers.js';
import { Module } from './module.js';
import type { InitRng } from './random.js';

export interface FeedForwardOptions {
  hidden: number;
  inner: number;
  /** HF activation name; default 'gelu'. 'gelu_new' is T5 v1.1's gated-GELU. */
  act?: string;
  /** Gated: two input projections (wi_0 through the activation, wi_1 linear). Default false. */
  gated?: boolean;
  /** Projection biases. Default true (T5 uses false). */
  bias?: boolean;
  /** Dropout on the inner activations, before wo (T5's DenseReluDense.dropout); default none. */
  dropout?: Dropout;
  init?: Initializer;
  rng: InitRng;
}

export class FeedForward extends Module {
  readonly gated: boolean;
  readonly #act: (x: Tensor) => Tensor;
  readonly #in: Linear[];
  readonly #out: Linear;
  readonly #dropout: Dropout | null;

  constructor(o: FeedForwardOptions) {
    super();
    this.gated = o.gated ?? false;
    this.#act = activation(o.act ?? 'gelu');
    const lin = (i: number, out: number) => new Linear(i, out, { bias: o.bias ?? true, rng: o.rng, ...(o.init ? { init: o.init } : {}) });
    this.#in = this.gated
      ? [this.addModule('wi_0', lin(o.hidden, o.inner)), this.addModule('wi_1', lin(o.hidden, o.inner))]
      : [this.addModule('wi', lin(o.hidden, o.inner))];
    this.#out = this.addModule('wo', lin(o.inner, o.hidden));
    this.#dropout = o.dropout ? this.addModule('dropout', o.dropout) : null;
  }

  forward(x: Tensor): Tensor {
    const h = this.gated ? mul(this.#act(this.#in[0]!.forward(x)), this.#in[1]!.forward(x)) : this.#act(this.#in[0]!.forward(x));
    return this.#out.forward(this.#dropout ? this.#dropout.forward(h) : h);
  }
}
