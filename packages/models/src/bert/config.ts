/**
 * BERT / RoFormer configuration: sizes and options, with the Hugging Face config.json keys
 * (vocab_size, hidden_size, ...) accepted by `bertConfigFromHF`.
 */
import { ArgumentError, type RopeLayout } from '@kexue/core-cuda';

import { parseHfBertConfig, type HfBertConfig } from '../checkpoint/bert_config.js';
import { readHfBertConfig } from '../checkpoint/config.js';

export interface BertConfig {
  /** 'bert': learned absolute positions and a pooler; 'roformer': RoPE on q and k in every layer, no positions table. */
  kind: 'bert' | 'roformer';
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  intermediateSize: number;
  /** HF hidden_act: 'gelu' (erf) by default. */
  hiddenAct: string;
  /** BERT only. */
  maxPositions: number;
  typeVocabSize: number;
  layerNormEps: number;
  hiddenDropout: number;
  /** RoFormer's embedding_size (a projection to hiddenSize follows when it differs). */
  embeddingSize: number;
  /** Std of the truncated-normal initialiser. */
  initializerRange: number;
  /** BERT's pooler (dense + tanh on [CLS]); default true for bert, false for roformer. */
  pooler: boolean;
  /**
   * RoFormer's RoPE pair layout: 'interleaved' (bert4keras / RoFormer checkpoints, the default) or
   * 'rotate-half' (GPT-NeoX / LLaMA; convertRopeCheckpoint moves weights between the two).
   */
  ropeLayout: RopeLayout;
  /**
   * The self-attention: 'softmax' (default) or 'linear' (φ = elu + 1 with RoPE in the numerator,
   * ALGORITHMS.md §6.1; MultiHeadAttention's `attention`).
   */
  attention: 'softmax' | 'linear';
}

const DEFAULTS: Omit<BertConfig, 'kind' | 'embeddingSize' | 'pooler'> = {
  vocabSize: 21128,
  hiddenSize: 768,
  numLayers: 12,
  numHeads: 12,
  intermediateSize: 3072,
  hiddenAct: 'gelu',
  maxPositions: 512,
  typeVocabSize: 2,
  layerNormEps: 1e-12,
  hiddenDropout: 0.1,
  initializerRange: 0.02,
  ropeLayout: 'interleaved',
  attention: 'softmax',
};

/** A full config from a partial one (defaults: BERT-base Chinese sizes), validated. */
export function bertConfig(partial: Partial<BertConfig> & { kind: BertConfig['kind'] }): BertConfig {
  const c: BertConfig = {
    ...DEFAULTS,
    embeddingSize: partial.hiddenSize ?? DEFAULTS.hiddenSize,
    pooler: partial.kind === 'bert',
    ...Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined)),
  } as BertConfig;
  if (c.kind !== 'bert' && c.kind !== 'roformer') throw new ArgumentError(`bert config: kind must be 'bert' or 'roformer', got ${String(c.kind)}`);
  for (const k of ['vocabSize', 'hiddenSize', 'numLayers', 'numHeads', 'intermediateSize', 'maxPositions', 'typeVocabSize', 'embeddingSize'] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) throw new ArgumentError(`bert config: ${k} must be a positive integer, got ${String(c[k])}`);
  }
  if (c.hiddenSize % c.numHeads !== 0) throw new ArgumentError(`bert config: hiddenSize ${c.hiddenSize} is not divisible by numHeads ${c.numHeads}`);
  if (c.kind === 'roformer' && (c.hiddenSize / c.numHeads) % 2 !== 0) throw new ArgumentError('bert config: RoFormer needs an even head size');
  if (c.kind === 'bert' && c.embeddingSize !== c.hiddenSize) throw new ArgumentError('bert config: BERT needs embeddingSize = hiddenSize');
  if (!(c.hiddenDropout >= 0 && c.hiddenDropout < 1)) throw new ArgumentError(`bert config: hiddenDropout must be in [0, 1), got ${c.hiddenDropout}`);
  if (c.ropeLayout !== 'interleaved' && c.ropeLayout !== 'rotate-half') {
    throw new ArgumentError(`bert config: ropeLayout must be 'interleaved' or 'rotate-half', got ${String(c.ropeLayout)}`);
  }
  if (c.attention !== 'softmax' && c.attention !== 'linear') throw new ArgumentError(`bert config: attention must be 'softmax' or 'linear', got ${String(c.attention)}`);
  if (!(c.layerNormEps > 0)) throw new ArgumentError(`bert config: layerNormEps must be > 0, got ${c.layerNormEps}`);
  return c;
}

/**
 * A config from a Hugging Face config.json object (BertConfig / RoFormerConfig keys), read by the
 * checkpoint package's strict reader (transformers' defaults; E_FORMAT on wrong types).
 */
export function bertConfigFromHF(json: Record<string, unknown>, overrides: Partial<BertConfig> = {}): BertConfig {
  return fromHfFields(parseHfBertConfig(json), overrides);
}

/** A config from a Hugging Face config.json file (E_IO unreadable; E_FORMAT naming the file and the key). */
export function readBertConfig(file: string, overrides: Partial<BertConfig> = {}): BertConfig {
  return fromHfFields(readHfBertConfig(file), overrides);
}

function fromHfFields(hf: HfBertConfig, overrides: Partial<BertConfig>): BertConfig {
  return bertConfig({
    kind: hf.modelType,
    vocabSize: hf.vocabSize,
    hiddenSize: hf.hiddenSize,
    numLayers: hf.numHiddenLayers,
    numHeads: hf.numAttentionHeads,
    intermediateSize: hf.intermediateSize,
    hiddenAct: hf.hiddenAct,
    maxPositions: hf.maxPositionEmbeddings,
    typeVocabSize: hf.typeVocabSize,
    layerNormEps: hf.layerNormEps,
    hiddenDropout: hf.hiddenDropoutProb,
    embeddingSize: hf.embeddingSize,
    initializerRange: hf.initializerRange,
    ...overrides,
  });
}
