/**
 * The mT5 v1.1 encoder–decoder of T5 PEGASUS (ALGORITHMS.md §4.1) with Hugging Face's module
 * structure, so that its state dict uses T5ForConditionalGeneration's names (shared.weight,
 * encoder.block.0.layer.0.SelfAttention.q.weight, …, lm_head.weight) and converted checkpoints
 * load by name.
 *
 * Pre-norm blocks with RMSNorm (no mean, no bias), attention without the 1/√d scaling plus a
 * relative position bias (one table per stack, in block 0, looked up once per forward and shared by
 * every layer), a gated-GELU FFN without biases, one input embedding shared by both stacks, and an
 * untied LM head. T5 PEGASUS (bert4keras) also biases the cross-attention by relative position and
 * scales the decoder output by d_model^−1/2 before the head (T5Config.crossPositionBias,
 * scaleLogits). As in kexue's BERT, the attention probabilities are never materialised, so there is
 * no dropout on them; every other dropout of transformers' T5 is here.
 */
import { Philox, ShapeError, concat, crossEntropy, dispose, keep, mul, reshape, tensor, tidy, type Tensor } from '@kexue/core-cuda';

import { MultiHeadAttention } from '../nn/attention.js';
import { FeedForward } from '../nn/feed_forward.js';
import { truncatedNormal, type Initializer } from '../nn/init.js';
import { Dropout, Embedding, Linear, RMSNorm } from '../nn/layers.js';
import { readWeightsFile } from '../checkpoint/weights.js';
import { Module, ModuleList, loadModule } from '../nn/module.js';
import { InitRng } from '../nn/random.js';
import { t5Config, type T5Config } from './config.js';
import type { Seq2SeqGenerator } from '../generate/decoder.js';
import { T5Decoding } from './decoding.js';
import { resolveT5Pretrained, type T5PretrainedOptions, type T5PretrainedSource } from './pretrained.js';
import { relativePositionBias } from './relative.js';
import { normed, residual, residualStream } from './stream.js';

/** Where a model's random numbers come from: weight init (JS) and dropout masks (Philox). */
export interface T5Seeds {
  /** Seed of the initialiser; default 0. */
  seed?: number;
  /** Dropout generator; default Philox(seed). */
  dropoutRng?: Philox;
}

interface Ctx {
  c: T5Config;
  rng: InitRng;
  drop: Philox;
}

/** transformers' T5 initialisation scales: a normal of std factor · size^−1/2 (truncated here). */
function scaled(ctx: Ctx, size: number): Initializer {
  return truncatedNormal(ctx.c.initializerFactor / Math.sqrt(size));
}

/** T5Attention: q, k, v, o without biases or 1/√d scaling; block 0's also holds the stack's relative_attention_bias table. */
export class T5Attention extends MultiHeadAttention {
  readonly relative_attention_bias: Embedding | null;

  constructor(ctx: Ctx, withTable: boolean) {
    const { c } = ctx;
    super({ hidden: c.dModel, heads: c.numHeads, headSize: c.dKv, bias: false, scale: 1, names: { query: 'q', key: 'k', value: 'v' }, output: 'o', rng: ctx.rng, init: scaled(ctx, c.dModel) });
    this.relative_attention_bias = withTable
      ? this.addModule('relative_attention_bias', new Embedding(c.relativeBuckets, c.numHeads, { rng: ctx.rng, init: scaled(ctx, c.dModel) }))
      : null;
  }
}

/** T5LayerSelfAttention / T5LayerCrossAttention: x + dropout(attention(layer_norm(x))). */
class T5AttentionLayer extends Module {
  readonly attention: T5Attention;
  readonly layer_norm: RMSNorm;
  readonly dropout: Dropout;

  constructor(ctx: Ctx, name: 'SelfAttention' | 'EncDecAttention', withTable: boolean) {
    super();
    this.attention = this.addModule(name, new T5Attention(ctx, withTable));
    this.layer_norm = this.addModule('layer_norm', new RMSNorm(ctx.c.dModel, { eps: ctx.c.layerNormEps }));
    this.dropout = this.addModule('dropout', new Dropout(ctx.c.dropoutRate, ctx.drop));
  }

  forward(x: Tensor, o: { mask: Tensor | null; bias: Tensor | null; causal?: boolean; context?: Tensor }): Tensor {
    const h = this.attention.forward(normed(this.layer_norm, x), {
      mask: o.mask,
      bias: o.bias,
      causal: o.causal ?? false,
      ...(o.context ? { context: o.context } : {}),
    });
    return residual(x, this.dropout.forward(h));
  }
}

/** T5LayerFF: x + dropout(DenseReluDense(layer_norm(x))). */
class T5FeedForwardLayer extends Module {
  readonly DenseReluDense: FeedForward;
  readonly layer_norm: RMSNorm;
  readonly dropout: Dropout;

  constructor(ctx: Ctx) {
    super();
    const { c } = ctx;
    this.DenseReluDense = this.addModule(
      'DenseReluDense',
      new FeedForward({ hidden: c.dModel, inner: c.dFf, act: c.ffnAct, gated: c.gatedFfn, bias: false, dropout: new Dropout(c.dropoutRate, ctx.drop), rng: ctx.rng, init: scaled(ctx, c.dModel) }),
    );
    this.layer_norm = this.addModule('layer_norm', new RMSNorm(c.dModel, { eps: c.layerNormEps }));
    this.dropout = this.addModule('dropout', new Dropout(c.dropoutRate, ctx.drop));
  }

  forward(x: Tensor): Tensor {
    return residual(x, this.dropout.forward(this.DenseReluDense.forward(normed(this.layer_norm, x))));
  }
}

/** A decoder block's cached key and value heads [rows, H, length, d_kv]: its own so far, and the encoder's. */
export interface BlockCache {
  self: { k: Tensor; v: Tensor } | null;
  cross: { k: Tensor; v: Tensor } | null;
}

/** What a stack's layers attend with: masks [B, 1, 1, T] (1 = real token) and the shared position biases. */
interface StackInputs {
  mask: Tensor | null;
  bias: Tensor;
  /** Decoder only: the encoder's output, its padding mask and the cross-attention bias (null without crossPositionBias). */
  context?: { states: Tensor; mask: Tensor | null; bias: Tensor | null };
}

/** T5Block: layer.0 self-attention, (decoder) layer.1 cross-attention, then the feed-forward layer. */
export class T5Block extends Module {
  readonly layer: ModuleList<Module>;
  readonly #self: T5AttentionLayer;
  readonly #cross: T5AttentionLayer | null;
  readonly #ff: T5FeedForwardLayer;

  constructor(ctx: Ctx, decoder: boolean, first: boolean) {
    super();
    this.#self = new T5AttentionLayer(ctx, 'SelfAttention', first);
    this.#cross = decoder ? new T5AttentionLayer(ctx, 'EncDecAttention', false) : null;
    this.#ff = new T5FeedForwardLayer(ctx);
    this.layer = this.addModule('layer', new ModuleList<Module>(this.#cross ? [this.#self, this.#cross, this.#ff] : [this.#self, this.#ff]));
  }

  /** Block 0's relative table (the stack's). */
  get relativeTable(): Embedding | null {
    return this.#self.attention.relative_attention_bias;
  }

  /**
   * One decoding step of a decoder block: x [B, 1, d_model] at the position after `cache.self`'s
   * keys. Appends this step's key and value heads to cache.self (the caller owns the cache's
   * tensors) and attends to cache.cross (the encoder's, computed once).
   */
  step(x: Tensor, cache: BlockCache, biases: { self: Tensor; cross: Tensor | null; crossMask: Tensor | null }): Tensor {
    const self = this.#self.attention;
    const h = normed(this.#self.layer_norm, x);
    const { k, v } = self.keyValueHeads(h);
    const keys = cache.self ? concat([cache.self.k, k], 2) : k;
    const values = cache.self ? concat([cache.self.v, v], 2) : v;
    if (cache.self) dispose([cache.self.k, cache.self.v]);
    cache.self = { k: keep(keys), v: keep(values) };
    let y = residual(x, this.#self.dropout.forward(self.attend(self.queryHeads(h), keys, values, { bias: biases.self })));
    if (this.#cross && cache.cross) {
      const cross = this.#cross.attention;
      const a = cross.attend(cross.queryHeads(normed(this.#cross.layer_norm, y)), cache.cross.k, cache.cross.v, { mask: biases.crossMask, bias: biases.cross });
      y = residual(y, this.#cross.dropout.forward(a));
    }
    return this.#ff.forward(y);
  }

  /** The key and value heads of the encoder's output for this (decoder) block's cross-attention. */
  crossKeyValues(encoderOutput: Tensor): { k: Tensor; v: Tensor } | null {
    return this.#cross ? this.#cross.attention.keyValueHeads(encoderOutput) : null;
  }

  forward(x: Tensor, s: StackInputs): Tensor {
    let h = this.#self.forward(x, { mask: s.mask, bias: s.bias, causal: this.#cross !== null });
    if (this.#cross && s.context) h = this.#cross.forward(h, { mask: s.context.mask, bias: s.context.bias, context: s.context.states });
    return this.#ff.forward(h);
  }
}

/** T5Stack: the encoder or the decoder: embed (the shared table), blocks, final_layer_norm, dropout. */
export class T5Stack extends Module {
  readonly block: ModuleList<T5Block>;
  readonly final_layer_norm: RMSNorm;
  readonly dropout: Dropout;
  readonly isDecoder: boolean;
  readonly #config: T5Config;
  readonly #embed: () => Embedding;

  constructor(ctx: Ctx, decoder: boolean, embed: () => Embedding) {
    super();
    const { c } = ctx;
    this.isDecoder = decoder;
    this.#config = c;
    this.#embed = embed;
    const n = decoder ? c.numDecoderLayers : c.numLayers;
    this.block = this.addModule('block', new ModuleList(Array.from({ length: n }, (_, i) => new T5Block(ctx, decoder, i === 0))));
    this.final_layer_norm = this.addModule('final_layer_norm', new RMSNorm(c.dModel, { eps: c.layerNormEps }));
    this.dropout = this.addModule('dropout', new Dropout(c.dropoutRate, ctx.drop));
    // transformers' state dicts hold the shared table again as each stack's embed_tokens
    this.addAlias('embed_tokens.weight', () => [c.vocabSize, c.dModel]);
  }

  /** The stack's relative position table (block 0's). */
  get relativeTable(): Embedding {
    return this.block.items[0]!.relativeTable!;
  }

  /** The position bias [1, H, queries, keys] from this stack's table: bidirectional in the encoder, unidirectional in the decoder. */
  positionBias(queries: number, keys: number, queryStart = 0): Tensor {
    return relativePositionBias(this.relativeTable, queries, keys, { bidirectional: !this.isDecoder, maxDistance: this.#config.relativeMaxDistance, queryStart });
  }

  /**
   * ids int32 [B, T] → the stack's output [B, T, d_model] (after final_layer_norm and dropout).
   * mask: uint8 [B, T], 1 = real token (padded keys are hidden); the decoder is also causal and
   * attends to `context` (the encoder's output and its mask).
   */
  forward(ids: Tensor, mask: Tensor | null, context?: { states: Tensor; mask: Tensor | null }): Tensor {
    const [B, T] = ids.shape as [number, number];
    const keyMask = (m: Tensor | null, n: number) => (m ? reshape(m, [B, 1, 1, n]) : null);
    const inputs: StackInputs = { mask: keyMask(mask, T), bias: this.positionBias(T, T) };
    if (context) {
      const S = context.states.shape[1]!;
      inputs.context = { states: context.states, mask: keyMask(context.mask, S), bias: this.#config.crossPositionBias ? this.positionBias(T, S) : null };
    }
    try {
      // each block in its own scope: only its output outlives it (a tape keeps what its backward needs)
      let x = tidy(() => residualStream(this.dropout.forward(this.#embed().forward(ids))));
      for (const block of this.block.items) {
        const input = x;
        x = tidy(() => block.forward(input, inputs));
        input.dispose();
      }
      const out = tidy(() => this.dropout.forward(normed(this.final_layer_norm, x)));
      x.dispose();
      return out;
    } finally {
      // (a tape that saved any of them for its backward keeps it until then)
      dispose([inputs.mask, inputs.bias, inputs.context?.mask, inputs.context?.bias].filter((t): t is Tensor => !!t));
    }
  }
}

/** The inputs of a teacher-forced forward. */
export interface T5Inputs {
  /** Encoder ids, int32 [B, S]. */
  inputIds: Tensor;
  /** uint8 [B, S], 1 = real token; default all real. */
  attentionMask?: Tensor | null;
  /** Decoder ids, int32 [B, T] (the targets shifted right behind decoderStartTokenId). */
  decoderInputIds: Tensor;
  /** uint8 [B, T], 1 = real token; default all real. */
  decoderAttentionMask?: Tensor | null;
}

export interface T5Output {
  /** The encoder's output [B, S, d_model]. */
  encoderOutput: Tensor;
  /** The decoder's output [B, T, d_model] (before the logit scale). */
  decoderOutput: Tensor;
  /** [B, T, vocab]. */
  logits: Tensor;
}

function checkIds(t: Tensor, what: string): [number, number] {
  if (t.rank !== 2 || t.dtype !== 'int32') throw new ShapeError(`T5: ${what} must be int32 [B, T], got ${t.describe()}`);
  return t.shape as [number, number];
}

function checkMask(m: Tensor | null | undefined, B: number, T: number, what: string): Tensor | null {
  if (!m) return null;
  if (m.dtype !== 'uint8' || m.rank !== 2 || m.shape[0] !== B || m.shape[1] !== T) {
    throw new ShapeError(`T5: ${what} must be uint8 [${B}, ${T}] (1 = real token), got ${m.describe()}`);
  }
  return m;
}

/** T5ForConditionalGeneration (mT5 v1.1 / T5 PEGASUS). */
export class T5ForConditionalGeneration extends Module implements Seq2SeqGenerator {
  readonly config: T5Config;
  readonly shared: Embedding;
  readonly encoder: T5Stack;
  readonly decoder: T5Stack;
  readonly lm_head: Linear;

  constructor(config: Partial<T5Config> = {}, seeds: T5Seeds = {}) {
    super();
    const c = t5Config(config);
    this.config = c;
    const seed = seeds.seed ?? 0;
    const ctx: Ctx = { c, rng: new InitRng(seed), drop: seeds.dropoutRng ?? new Philox(seed) };
    this.shared = this.addModule('shared', new Embedding(c.vocabSize, c.dModel, { rng: ctx.rng, init: truncatedNormal(c.initializerFactor) }));
    this.encoder = this.addModule('encoder', new T5Stack(ctx, false, () => this.shared));
    this.decoder = this.addModule('decoder', new T5Stack(ctx, true, () => this.shared));
    this.lm_head = this.addModule('lm_head', new Linear(c.dModel, c.vocabSize, { bias: false, rng: ctx.rng, init: truncatedNormal(c.initializerFactor) }));
  }

  /**
   * A model built straight from a Hugging Face T5/mT5 checkpoint (T5 PEGASUS's pytorch_model.bin +
   * config.json, or model.safetensors), in eval mode: no random initialisation runs, the file's
   * tensors become the parameters (read onto `options.device`). The stacks' embed_tokens copies of
   * `shared.weight` are accepted as tied. A missing, unexpected or mis-shaped tensor is E_FORMAT
   * naming each (nothing is built); a missing file E_IO; a bad config.json E_FORMAT naming the key.
   */
  static fromPretrained(source: T5PretrainedSource, options: T5PretrainedOptions = {}): T5ForConditionalGeneration {
    const { config, weightsFile } = resolveT5Pretrained(source, options.variant, options.config);
    const weights = readWeightsFile(weightsFile, options.device);
    const seeds = options.dropoutRng ? { dropoutRng: options.dropoutRng } : {};
    return loadModule(() => new T5ForConditionalGeneration(config, seeds), weights, { source: weightsFile }).eval();
  }

  /** The encoder's output [B, S, d_model] for ids int32 [B, S] and their padding mask. */
  encode(inputIds: Tensor, attentionMask: Tensor | null = null): Tensor {
    const [B, S] = checkIds(inputIds, 'inputIds');
    return this.encoder.forward(inputIds, checkMask(attentionMask, B, S, 'attentionMask'));
  }

  /** The decoder's output [B, T, d_model] for decoder ids attending to an encoder output [B, S, d_model]. */
  decode(decoderInputIds: Tensor, encoderOutput: Tensor, o: { attentionMask?: Tensor | null; decoderAttentionMask?: Tensor | null } = {}): Tensor {
    const [B, T] = checkIds(decoderInputIds, 'decoderInputIds');
    if (encoderOutput.rank !== 3 || encoderOutput.shape[0] !== B || encoderOutput.shape[2] !== this.config.dModel) {
      throw new ShapeError(`T5: encoderOutput must be [${B}, S, ${this.config.dModel}], got ${encoderOutput.describe()}`);
    }
    const S = encoderOutput.shape[1]!;
    return this.decoder.forward(decoderInputIds, checkMask(o.decoderAttentionMask, B, T, 'decoderAttentionMask'), {
      states: encoderOutput,
      mask: checkMask(o.attentionMask, B, S, 'attentionMask'),
    });
  }

  /** Logits [B, T, vocab] of a decoder output: the LM head, after the d_model^−1/2 scale when the config asks for it. */
  logits(decoderOutput: Tensor): Tensor {
    return tidy(() => this.lm_head.forward(this.config.scaleLogits ? mul(decoderOutput, this.config.dModel ** -0.5) : decoderOutput));
  }

  /** The end of a generated sequence unless generate() is told another: eos_token_id. */
  get defaultEndTokenId(): number {
    return this.config.eosTokenId;
  }

  /** An incremental decoding state (KV cache) for generate(): encodes inputIds [B, S] once. */
  startDecoding(inputIds: Tensor, attentionMask: Tensor | null = null): T5Decoding {
    return new T5Decoding(this, inputIds, attentionMask);
  }

  /** A teacher-forced forward: encoder, decoder and logits. */
  forward(inputs: T5Inputs): T5Output {
    const encoderOutput = this.encode(inputs.inputIds, inputs.attentionMask ?? null);
    const decoderOutput = this.decode(inputs.decoderInputIds, encoderOutput, inputs);
    return { encoderOutput, decoderOutput, logits: this.logits(decoderOutput) };
  }
}

/**
 * The teacher-forced loss: mean cross-entropy of logits [B, T, vocab] against labels int32 [B, T]
 * over the positions whose mask (uint8 [B, T]) is 1 (padding left out).
 */
export function seq2seqLoss(logits: Tensor, labels: Tensor, mask: Tensor | null = null): Tensor {
  const [B, T, V] = logits.shape as [number, number, number];
  if (labels.dtype !== 'int32' || labels.rank !== 2 || labels.shape[0] !== B || labels.shape[1] !== T) {
    throw new ShapeError(`seq2seqLoss: labels must be int32 [${B}, ${T}], got ${labels.describe()}`);
  }
  if (mask && (mask.dtype !== 'uint8' || mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== T)) {
    throw new ShapeError(`seq2seqLoss: mask must be uint8 [${B}, ${T}], got ${mask.describe()}`);
  }
  return tidy(() => {
    let target = reshape(labels, [B * T]);
    if (mask) {
      // int32 labels have no device-side select: padding becomes the ignored label on the host ([B, T] is small)
      const ids = Int32Array.from(labels.toFloat32Array());
      const keep = mask.toFloat32Array();
      for (let i = 0; i < ids.length; i++) if (keep[i] === 0) ids[i] = -100;
      target = tensor(ids, [B * T], { dtype: 'int32', device: labels.device });
    }
    return crossEntropy(reshape(logits, [B * T, V]), target, { ignoreIndex: -100 });
  });
}
