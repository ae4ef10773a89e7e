/**
 * BERT and RoFormer encoders with Hugging Face's module structure, so that their state dicts use
 * BertModel's / RoFormerModel's names (embeddings.word_embeddings.weight,
 * encoder.layer.0.attention.self.query.weight, …) and converted checkpoints load by name.
 *
 * BERT: word + learned absolute position + segment embeddings, LayerNorm, post-LN layers, pooler.
 * RoFormer: word + segment embeddings (no positions table), RoPE on q and k in every layer.
 * Attention masks hide padded keys (−∞ by select in the fused attention op).
 *
 * The forward runs each block in its own tidy scope, so a block's intermediates are freed as soon
 * as its output exists (a gradient tape keeps what its backward needs: dispose defers those), and
 * `fromPretrained` builds a model straight from a checkpoint, without a random initialisation.
 */
import {
  ArgumentError,
  ShapeError,
  add,
  matmul,
  reshape,
  slice,
  tanh,
  tidy,
  zeros,
  Philox,
  type Tensor,
} from '@kexue/core-cuda';

import { modernNormNames, readWeightsFile } from '../checkpoint/weights.js';
import { activation, geluApproximate } from '../nn/activations.js';
import { MultiHeadAttention } from '../nn/attention.js';
import { truncatedNormal, zerosInit } from '../nn/init.js';
import { Dropout, Embedding, LayerNorm, Linear } from '../nn/layers.js';
import { Module, ModuleList, loadModule } from '../nn/module.js';
import { InitRng } from '../nn/random.js';
import { bertConfig, type BertConfig } from './config.js';
import { resolvePretrained, type PretrainedOptions, type PretrainedSource } from './pretrained.js';

/** Where a model's random numbers come from: weight init (JS) and dropout masks (Philox). */
export interface ModelSeeds {
  /** Seed of the initialiser; default 0. */
  seed?: number;
  /** Dropout generator; default Philox(seed). */
  dropoutRng?: Philox;
}

interface Ctx {
  c: BertConfig;
  rng: InitRng;
  drop: Philox;
}

function linear(ctx: Ctx, i: number, o: number): Linear {
  return new Linear(i, o, { rng: ctx.rng, init: truncatedNormal(ctx.c.initializerRange) });
}

/** HF BertEmbeddings / RoFormerEmbeddings. */
export class BertEmbeddings extends Module {
  readonly config: BertConfig;
  readonly word_embeddings: Embedding;
  readonly position_embeddings: Embedding | null;
  readonly token_type_embeddings: Embedding;
  readonly LayerNorm: LayerNorm;
  readonly dropout: Dropout;

  constructor(ctx: Ctx) {
    super();
    const { c, rng } = ctx;
    this.config = c;
    const init = truncatedNormal(c.initializerRange);
    this.word_embeddings = this.addModule('word_embeddings', new Embedding(c.vocabSize, c.embeddingSize, { rng, init }));
    this.position_embeddings = c.kind === 'bert' ? this.addModule('position_embeddings', new Embedding(c.maxPositions, c.embeddingSize, { rng, init })) : null;
    this.token_type_embeddings = this.addModule('token_type_embeddings', new Embedding(c.typeVocabSize, c.embeddingSize, { rng, init }));
    this.LayerNorm = this.addModule('LayerNorm', new LayerNorm(c.embeddingSize, { eps: c.layerNormEps }));
    this.dropout = this.addModule('dropout', new Dropout(c.hiddenDropout, ctx.drop));
    this.ignoreOnLoad(/position_ids$/); // a buffer in HF state dicts
  }

  forward(ids: Tensor, tokenTypeIds: Tensor): Tensor {
    let x = add(this.word_embeddings.forward(ids), this.token_type_embeddings.forward(tokenTypeIds));
    if (this.position_embeddings) {
      const T = ids.shape[1]!;
      const pos = slice(this.position_embeddings.weight, [0, 0], [T, -1]);
      x = add(x, pos);
    }
    return this.dropout.forward(this.LayerNorm.forward(x));
  }
}

/** HF BertSelfOutput / BertOutput: dense, dropout, LayerNorm(x + residual). */
export class DenseResidualNorm extends Module {
  readonly dense: Linear;
  readonly LayerNorm: LayerNorm;
  readonly dropout: Dropout;

  constructor(ctx: Ctx, inner: number) {
    super();
    this.dense = this.addModule('dense', linear(ctx, inner, ctx.c.hiddenSize));
    this.LayerNorm = this.addModule('LayerNorm', new LayerNorm(ctx.c.hiddenSize, { eps: ctx.c.layerNormEps }));
    this.dropout = this.addModule('dropout', new Dropout(ctx.c.hiddenDropout, ctx.drop));
  }

  forward(x: Tensor, residual: Tensor): Tensor {
    return this.LayerNorm.forwardResidual(this.dropout.forward(this.dense.forward(x)), residual);
  }
}

/** HF BertAttention: attention.self (query, key, value) and attention.output (dense, LayerNorm). */
export class BertAttention extends Module {
  readonly self: MultiHeadAttention;
  readonly output: DenseResidualNorm;

  constructor(ctx: Ctx) {
    super();
    const { c } = ctx;
    this.self = this.addModule(
      'self',
      new MultiHeadAttention({ hidden: c.hiddenSize, heads: c.numHeads, rope: c.kind === 'roformer' && { layout: c.ropeLayout }, attention: c.attention, rng: ctx.rng, init: truncatedNormal(c.initializerRange) }),
    );
    this.output = this.addModule('output', new DenseResidualNorm(ctx, c.hiddenSize));
  }

  forward(x: Tensor, mask: Tensor | null): Tensor {
    return this.output.forward(this.self.forward(x, { mask }), x);
  }
}

/** HF BertIntermediate: dense + activation (a GELU takes the bias in the fused biasGelu). */
export class BertIntermediate extends Module {
  readonly dense: Linear;
  readonly #act: (x: Tensor) => Tensor;
  readonly #gelu: 'none' | 'tanh' | null;

  constructor(ctx: Ctx) {
    super();
    this.dense = this.addModule('dense', linear(ctx, ctx.c.hiddenSize, ctx.c.intermediateSize));
    this.#act = activation(ctx.c.hiddenAct);
    this.#gelu = geluApproximate(ctx.c.hiddenAct);
  }

  forward(x: Tensor): Tensor {
    return this.#gelu ? this.dense.forwardGelu(x, this.#gelu) : this.#act(this.dense.forward(x));
  }
}

/** HF BertLayer: attention, intermediate, output. */
export class BertLayer extends Module {
  readonly attention: BertAttention;
  readonly intermediate: BertIntermediate;
  readonly output: DenseResidualNorm;

  constructor(ctx: Ctx) {
    super();
    this.attention = this.addModule('attention', new BertAttention(ctx));
    this.intermediate = this.addModule('intermediate', new BertIntermediate(ctx));
    this.output = this.addModule('output', new DenseResidualNorm(ctx, ctx.c.intermediateSize));
  }

  forward(x: Tensor, mask: Tensor | null): Tensor {
    const a = this.attention.forward(x, mask);
    return this.output.forward(this.intermediate.forward(a), a);
  }
}

export interface EncoderOutput {
  /** The last layer's output [B, T, hidden]. */
  lastHiddenState: Tensor;
  /** Every layer's output, block 0 first (not the embeddings). */
  hiddenStates: Tensor[];
  /** The pooler's dense on [CLS], before tanh ([B, hidden]); null without a pooler. */
  poolerLinear: Tensor | null;
  /** tanh(poolerLinear): BERT's pooled output; null without a pooler. */
  pooled: Tensor | null;
}

export interface EncoderInputs {
  /** int32 [B, T]; default all zeros. */
  tokenTypeIds?: Tensor | null;
  /** uint8 [B, T], 1 = real token; default all real. Padded keys are hidden from every query. */
  attentionMask?: Tensor | null;
  /**
   * Return every block's output in `hiddenStates` (default true). With false, `hiddenStates` is
   * empty and each block's output is freed once the next block has used it, so an inference holds
   * one block's activations at a time.
   */
  hiddenStates?: boolean;
}

/** BertModel or RoFormerModel (config.kind). */
export class BertModel extends Module {
  readonly config: BertConfig;
  readonly embeddings: BertEmbeddings;
  readonly embeddings_project: Linear | null;
  readonly layers: BertLayer[];
  readonly pooler: Linear | null;

  constructor(config: Partial<BertConfig> & { kind: BertConfig['kind'] }, seeds: ModelSeeds = {}) {
    super();
    const c = bertConfig(config);
    this.config = c;
    const seed = seeds.seed ?? 0;
    const ctx: Ctx = { c, rng: new InitRng(seed), drop: seeds.dropoutRng ?? new Philox(seed) };
    this.embeddings = this.addModule('embeddings', new BertEmbeddings(ctx));
    this.embeddings_project = c.embeddingSize !== c.hiddenSize ? this.addModule('embeddings_project', linear(ctx, c.embeddingSize, c.hiddenSize)) : null;
    const encoder = this.addModule('encoder', new BertEncoder(ctx));
    this.layers = encoder.layer.items;
    this.pooler = c.pooler ? this.addModule('pooler', new PoolerHolder(ctx)).dense : null;
  }

  /**
   * A BertModel (a RoFormer when config.json's model_type says so) built straight from a Hugging
   * Face checkpoint, in eval mode: no random initialisation runs, and the weights read from the
   * file become the parameters (read onto `options.device`, no further copy). The file's names may
   * sit under 'bert.' / 'roformer.' (see PretrainedOptions.prefix). A missing, unexpected or
   * mis-shaped tensor is E_FORMAT naming each (nothing is built); a missing file E_IO; a bad
   * config.json E_FORMAT naming the key.
   */
  static fromPretrained(source: PretrainedSource, options: PretrainedOptions = {}): BertModel {
    return buildPretrained(source, options, (config, seeds) => new BertModel(config, seeds), {
      // a BertForMaskedLM / BertForPreTraining file keeps the encoder under its kind
      prefix: (weights, kind) => (!(`embeddings.${WORD_EMBEDDINGS}` in weights) && `${kind}.embeddings.${WORD_EMBEDDINGS}` in weights ? `${kind}.` : ''),
    });
  }

  /** inputIds int32 [B, T] → the encoder's outputs. */
  forward(inputIds: Tensor, inputs: EncoderInputs = {}): EncoderOutput {
    if (inputIds.rank !== 2 || inputIds.dtype !== 'int32') throw new ShapeError(`BertModel: inputIds must be int32 [B, T], got ${inputIds.describe()}`);
    const [B, T] = inputIds.shape as [number, number];
    if (this.config.kind === 'bert' && T > this.config.maxPositions) {
      throw new ArgumentError(`BertModel: sequence length ${T} exceeds maxPositions ${this.config.maxPositions}`);
    }
    const types = inputs.tokenTypeIds ?? zeros([B, T], { dtype: 'int32', device: inputIds.device });
    let mask: Tensor | null = null;
    try {
      if (types.dtype !== 'int32' || types.shape[0] !== B || types.shape[1] !== T || types.rank !== 2) {
        throw new ShapeError(`BertModel: tokenTypeIds must be int32 [${B}, ${T}], got ${types.describe()}`);
      }
      if (inputs.attentionMask) {
        const m = inputs.attentionMask;
        if (m.dtype !== 'uint8' || m.rank !== 2 || m.shape[0] !== B || m.shape[1] !== T) {
          throw new ShapeError(`BertModel: attentionMask must be uint8 [${B}, ${T}] (1 = real token), got ${m.describe()}`);
        }
        mask = reshape(m, [B, 1, 1, T]);
      }
      // each stage in its own scope: only its output outlives it (what a tape needs is kept by the tape)
      let x = tidy(() => {
        const e = this.embeddings.forward(inputIds, types);
        return this.embeddings_project ? this.embeddings_project.forward(e) : e;
      });
      const keepStates = inputs.hiddenStates ?? true;
      const hiddenStates: Tensor[] = [];
      for (const layer of this.layers) {
        const input = x;
        x = tidy(() => layer.forward(input, mask));
        if (keepStates) hiddenStates.push(x);
        else input.dispose();
      }
      let poolerLinear: Tensor | null = null;
      let pooled: Tensor | null = null;
      if (this.pooler) {
        const last = x;
        poolerLinear = tidy(() => this.pooler!.forward(reshape(slice(last, [0, 0, 0], [B, 1, -1]), [B, -1])));
        pooled = tanh(poolerLinear);
      }
      return { lastHiddenState: x, hiddenStates, poolerLinear, pooled };
    } finally {
      // the inputs made here (a tape that saved one for its backward keeps it until then)
      if (types !== inputs.tokenTypeIds) types.dispose();
      mask?.dispose();
    }
  }
}

const WORD_EMBEDDINGS = 'word_embeddings.weight';

/**
 * What both fromPretrained loaders do: the config (the checkpoint's, then the loader's defaults,
 * then options.config), the weights read onto the device (LayerNorm.gamma / .beta read as .weight /
 * .bias), the model built from them by loadModule (no initialiser runs; the weights become the
 * parameters), in eval mode.
 */
function buildPretrained<M extends Module>(
  source: PretrainedSource,
  options: PretrainedOptions,
  build: (config: BertConfig, seeds: ModelSeeds) => M,
  defaults: { config?: Partial<BertConfig>; prefix: (weights: Record<string, Tensor>, kind: BertConfig['kind']) => string },
): M {
  const { config, weightsFile } = resolvePretrained(source, { ...defaults.config, ...options.config });
  const weights = modernNormNames(readWeightsFile(weightsFile, options.device));
  const prefix = options.prefix ?? defaults.prefix(weights, config.kind);
  const seeds = options.dropoutRng ? { dropoutRng: options.dropoutRng } : {};
  return loadModule(() => build(config, seeds), weights, { prefix, partial: options.partial ?? prefix !== '', source: weightsFile }).eval();
}

/** HF BertEncoder / RoFormerEncoder: encoder.layer.N. */
class BertEncoder extends Module {
  readonly layer: ModuleList<BertLayer>;

  constructor(ctx: Ctx) {
    super();
    this.layer = this.addModule('layer', new ModuleList(Array.from({ length: ctx.c.numLayers }, () => new BertLayer(ctx))));
    // RoFormer keeps its sinusoidal table as a buffer; kexue computes the rotation instead.
    this.ignoreOnLoad(/embed_positions\.weight$/);
  }
}

/** HF BertPooler: pooler.dense. */
class PoolerHolder extends Module {
  readonly dense: Linear;

  constructor(ctx: Ctx) {
    super();
    this.dense = this.addModule('dense', linear(ctx, ctx.c.hiddenSize, ctx.c.hiddenSize));
  }
}

/** HF cls.predictions: transform (dense, act, LayerNorm), a decoder tied to the word embeddings, bias. */
class MLMPredictions extends Module {
  readonly transform: Transform;
  readonly #table: () => Tensor;

  constructor(ctx: Ctx, table: () => Tensor) {
    super();
    this.transform = this.addModule('transform', new Transform(ctx));
    this.addParameter('bias', { shape: [ctx.c.vocabSize], init: zerosInit, rng: ctx.rng });
    this.#table = table;
    this.addAlias('decoder.weight', () => [ctx.c.vocabSize, ctx.c.embeddingSize]);
    this.addAlias('decoder.bias', () => [ctx.c.vocabSize]);
  }

  forward(h: Tensor): Tensor {
    const x = this.transform.forward(h);
    const [B, T, E] = x.shape as [number, number, number];
    // [B·T, E] · tableᵀ + bias
    const logits = matmul(reshape(x, [B * T, E]), this.#table(), { transB: true, bias: this.p('bias') });
    return reshape(logits, [B, T, -1]);
  }
}

class Transform extends Module {
  readonly dense: Linear;
  readonly LayerNorm: LayerNorm;
  readonly #act: (x: Tensor) => Tensor;

  constructor(ctx: Ctx) {
    super();
    this.dense = this.addModule('dense', linear(ctx, ctx.c.hiddenSize, ctx.c.embeddingSize));
    this.LayerNorm = this.addModule('LayerNorm', new LayerNorm(ctx.c.embeddingSize, { eps: ctx.c.layerNormEps }));
    this.#act = activation(ctx.c.hiddenAct);
  }

  forward(x: Tensor): Tensor {
    return this.LayerNorm.forward(this.#act(this.dense.forward(x)));
  }
}

class ClsHolder extends Module {
  readonly predictions: MLMPredictions;

  constructor(ctx: Ctx, table: () => Tensor) {
    super();
    this.predictions = this.addModule('predictions', new MLMPredictions(ctx, table));
  }
}

/**
 * BertForMaskedLM / RoFormerForMaskedLM: the encoder under 'bert.' or 'roformer.' and the MLM head
 * under 'cls.predictions.', its decoder tied to the word embeddings (the state dict's
 * cls.predictions.decoder.* entries are accepted as tied copies). HF's BertForMaskedLM has no
 * pooler; set `pooler: true` in the config to keep one.
 */
export class BertForMaskedLM extends Module {
  readonly encoder: BertModel;
  readonly cls: ClsHolder;

  constructor(config: Partial<BertConfig> & { kind: BertConfig['kind'] }, seeds: ModelSeeds = {}) {
    super();
    const c = bertConfig({ pooler: false, ...config });
    this.encoder = this.addModule(c.kind, new BertModel(c, seeds));
    const seed = (seeds.seed ?? 0) + 1;
    const ctx: Ctx = { c, rng: new InitRng(seed), drop: seeds.dropoutRng ?? new Philox(seed) };
    this.cls = this.addModule('cls', new ClsHolder(ctx, () => this.encoder.embeddings.word_embeddings.weight));
  }

  /**
   * A BertForMaskedLM / RoFormerForMaskedLM built straight from a Hugging Face checkpoint (names
   * 'bert.…' or 'roformer.…' and 'cls.predictions.…'), in eval mode, as BertModel.fromPretrained
   * builds the encoder: no random initialisation, the file's tensors become the parameters. No
   * pooler unless `options.config` asks for one; a BertForPreTraining file's other head needs
   * `partial: true`.
   */
  static fromPretrained(source: PretrainedSource, options: PretrainedOptions = {}): BertForMaskedLM {
    return buildPretrained(source, options, (config, seeds) => new BertForMaskedLM(config, seeds), { config: { pooler: false }, prefix: () => '' });
  }

  /** Encoder outputs plus MLM logits [B, T, vocab]. */
  forward(inputIds: Tensor, inputs: EncoderInputs = {}): EncoderOutput & { logits: Tensor } {
    const out = this.encoder.forward(inputIds, inputs);
    return { ...out, logits: this.cls.predictions.forward(out.lastHiddenState) };
  }
}

