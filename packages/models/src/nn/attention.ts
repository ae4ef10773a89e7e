/**
 * Multi-head attention over the fused kx.attention op: q/k/v projections (HF names query, key,
 * value by default), optional RoPE on q and k, an optional output projection. The attention
 * probabilities are never materialised, so there is no dropout on them (HF BERT has one; it is off
 * in eval mode, and the hidden-state dropouts remain).
 */
import { ArgumentError, attention, permute, reshape, type Tensor } from '@kexue/core-cuda';

import type { Initializer } from './init.js';
import { Linear } from './layers.js';
import { Module } from './module.js';
import type { InitRng } from './random.js';
import { linearAttention } from './linear_attention.js';
import { applyRope, type LayerRopeOptions } from './rope.js';

export interface MultiHeadAttentionOptions {
  hidden: number;
  heads: number;
  /** Per-head size; default hidden / heads. */
  headSize?: number;
  /**
   * Rotate q and k by RoPE (RoFormer): true for the interleaved layout with base 10000, or the
   * kx.rope options (layout, base, rotaryDim, scaling) to use. Default false.
   */
  rope?: boolean | LayerRopeOptions;
  /**
   * 'softmax' (the fused kx.attention, default) or 'linear': φ = elu + 1 linear attention with RoPE
   * in the numerator only (ALGORITHMS.md §6.1, nn/linear_attention.ts); it takes key padding masks
   * only, no bias, and does not use `scale`.
   */
  attention?: 'softmax' | 'linear';
  /** Projection biases. Default true. */
  bias?: boolean;
  /** Child names of the projections: default { query: 'query', key: 'key', value: 'value' } (HF BERT). */
  names?: { query: string; key: string; value: string };
  /** Name of an output projection child (e.g. 'o' for T5); default none (BERT's lives in attention.output). */
  output?: string | null;
  /** Multiplies q·k; default 1/√headSize. */
  scale?: number;
  init?: Initializer;
  rng: InitRng;
}

export interface AttentionCallOptions {
  /** uint8 mask broadcastable to [B, H, Tq, Tk], 1 = attend (a padding mask is [B, 1, 1, Tk]). */
  mask?: Tensor | null;
  /** Additive float bias broadcastable to [B, H, Tq, Tk]. */
  bias?: Tensor | null;
  causal?: boolean;
  /** Keys/values from another sequence [B, Tk, hidden] (cross-attention); default x itself. */
  context?: Tensor;
  /** int32 positions for RoPE (default 0 … T−1). */
  positions?: Tensor | null;
}

export class MultiHeadAttention extends Module {
  readonly heads: number;
  readonly headSize: number;
  readonly useRope: boolean;
  /** The kx.rope options q and k are rotated with (when useRope). */
  readonly ropeOptions: LayerRopeOptions;
  readonly scale: number;
  readonly attention: 'softmax' | 'linear';
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;
  readonly output: Linear | null;

  constructor(o: MultiHeadAttentionOptions) {
    super();
    if (!Number.isInteger(o.heads) || o.heads <= 0) throw new ArgumentError(`MultiHeadAttention: heads must be a positive integer, got ${o.heads}`);
    const headSize = o.headSize ?? o.hidden / o.heads;
    if (!Number.isInteger(headSize) || headSize <= 0) {
      throw new ArgumentError(`MultiHeadAttention: hidden ${o.hidden} is not divisible by heads ${o.heads} (give headSize)`);
    }
    if (o.rope && headSize % 2 !== 0) throw new ArgumentError(`MultiHeadAttention: RoPE needs an even head size, got ${headSize}`);
    this.heads = o.heads;
    this.headSize = headSize;
    this.useRope = o.rope !== undefined && o.rope !== false;
    this.ropeOptions = typeof o.rope === 'object' ? { ...o.rope } : {};
    this.scale = o.scale ?? 1 / Math.sqrt(headSize);
    this.attention = o.attention ?? 'softmax';
    if (this.attention !== 'softmax' && this.attention !== 'linear') throw new ArgumentError(`MultiHeadAttention: attention must be 'softmax' or 'linear', got ${String(o.attention)}`);
    const inner = o.heads * headSize;
    const names = o.names ?? { query: 'query', key: 'key', value: 'value' };
    const lin = (i: number, out: number) => new Linear(i, out, { bias: o.bias ?? true, rng: o.rng, ...(o.init ? { init: o.init } : {}) });
    this.query = this.addModule(names.query, lin(o.hidden, inner));
    this.key = this.addModule(names.key, lin(o.hidden, inner));
    this.value = this.addModule(names.value, lin(o.hidden, inner));
    this.output = o.output ? this.addModule(o.output, lin(inner, o.hidden)) : null;
  }

  /** [B, T, H·d] → [B, H, T, d]. */
  private split(x: Tensor): Tensor {
    const [B, T] = x.shape as [number, number];
    return permute(reshape(x, [B, T, this.heads, this.headSize]), [0, 2, 1, 3]);
  }

  /** The query heads [B, H, T, d] of x [B, T, hidden] (rotated at `positions` when the layer uses RoPE). */
  queryHeads(x: Tensor, positions: Tensor | null = null): Tensor {
    const q = this.split(this.query.forward(x));
    return this.useRope ? applyRope(q, positions, this.ropeOptions) : q;
  }

  /** The key and value heads [B, H, S, d] of a context [B, S, hidden] (keys rotated as queryHeads rotates queries). */
  keyValueHeads(context: Tensor, positions: Tensor | null = null): { k: Tensor; v: Tensor } {
    const k = this.split(this.key.forward(context));
    return { k: this.useRope ? applyRope(k, positions, this.ropeOptions) : k, v: this.split(this.value.forward(context)) };
  }

  /**
   * Attention of query heads over key and value heads (from queryHeads / keyValueHeads, or a cache
   * of them), the heads merged and, when the layer has one, the output projection: [B, T, hidden].
   */
  attend(q: Tensor, k: Tensor, v: Tensor, options: Pick<AttentionCallOptions, 'mask' | 'bias' | 'causal'> = {}): Tensor {
    if (this.attention === 'linear') throw new ArgumentError('MultiHeadAttention: attend() is softmax attention; a linear-attention layer attends in forward()');
    const o = attention(q, k, v, {
      mask: options.mask ?? null,
      bias: options.bias ?? null,
      causal: options.causal ?? false,
      scale: this.scale,
    });
    return this.merge(o);
  }

  /** Heads [B, H, T, d] merged to [B, T, H·d], then the output projection when the layer has one. */
  private merge(o: Tensor): Tensor {
    const [B, , T] = o.shape as [number, number, number];
    const merged = reshape(permute(o, [0, 2, 1, 3]), [B, T, this.heads * this.headSize]);
    return this.output ? this.output.forward(merged) : merged;
  }

  /** x [B, T, hidden] → [B, T, hidden] (or H·headSize without an output projection). */
  forward(x: Tensor, options: AttentionCallOptions = {}): Tensor {
    if (x.rank !== 3) throw new ArgumentError(`MultiHeadAttention: x must be [B, T, hidden], got ${x.describe()}`);
    const positions = options.positions ?? null;
    if (this.attention === 'linear') {
      if (options.bias) throw new ArgumentError('MultiHeadAttention: linear attention takes no attention bias');
      const context = options.context ?? x;
      const o = linearAttention(this.split(this.query.forward(x)), this.split(this.key.forward(context)), this.split(this.value.forward(context)), {
        causal: options.causal ?? false,
        mask: options.mask ?? null,
        rope: this.useRope ? { ...this.ropeOptions, positions } : null,
      });
      return this.merge(o);
    }
    const { k, v } = this.keyValueHeads(options.context ?? x, positions);
    return this.attend(this.queryHeads(x, positions), k, v, options);
  }
}
