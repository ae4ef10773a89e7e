/**
 * T5 PEGASUS / mT5 v1.1 configuration (ALGORITHMS.md §4.1): sizes and options, with Hugging Face
 * T5/mT5 config.json files accepted by `t5ConfigFromHF` / `readT5Config`.
 *
 * Two details separate T5 PEGASUS (bert4keras) from Hugging Face's mT5 on the same weights: the
 * decoder's cross-attention also adds a relative position bias (`crossPositionBias`), and the
 * decoder output is scaled by d_model^−1/2 before the untied LM head (`scaleLogits`; transformers
 * scales only tied heads). The 't5-pegasus' variant (the default) turns both on, 'hf' both off; a
 * config.json may set either by its own key (cross_position_bias, scale_logits).
 */
import { ArgumentError, FormatError } from '@kexue/core-cuda';

import { readHfT5Config } from '../checkpoint/config.js';
import { parseHfT5Config, type HfT5Config } from '../checkpoint/t5_config.js';

export interface T5Config {
  vocabSize: number;
  dModel: number;
  /** Per-head size (d_kv). */
  dKv: number;
  /** The FFN's inner size (gated: each of wi_0, wi_1). */
  dFf: number;
  numLayers: number;
  numDecoderLayers: number;
  numHeads: number;
  relativeBuckets: number;
  relativeMaxDistance: number;
  dropoutRate: number;
  layerNormEps: number;
  /** Gated FFN (wi_0 through the activation times wi_1), as mT5 v1.1; else one wi. */
  gatedFfn: boolean;
  /** HF activation name: 'gelu_new' (tanh GELU, mT5's gated-gelu) or 'gelu' (erf), 'relu', … */
  ffnAct: string;
  /** The decoder's cross-attention adds a relative position bias (bert4keras; T5 PEGASUS). */
  crossPositionBias: boolean;
  /** Decoder output × d_model^−1/2 before the LM head (bert4keras; T5 PEGASUS). */
  scaleLogits: boolean;
  /** Std of the normal initialiser's unit (HF's initializer_factor). */
  initializerFactor: number;
  padTokenId: number;
  eosTokenId: number;
  decoderStartTokenId: number;
}

/** How a checkpoint's weights are meant to run: T5 PEGASUS (bert4keras) or Hugging Face mT5. */
export type T5Variant = 't5-pegasus' | 'hf';

/** Defaults: T5 PEGASUS small (ALGORITHMS.md §4.1). */
const DEFAULTS: T5Config = {
  vocabSize: 50000,
  dModel: 512,
  dKv: 64,
  dFf: 1024,
  numLayers: 8,
  numDecoderLayers: 8,
  numHeads: 6,
  relativeBuckets: 32,
  relativeMaxDistance: 128,
  dropoutRate: 0.1,
  layerNormEps: 1e-6,
  gatedFfn: true,
  ffnAct: 'gelu_new',
  crossPositionBias: true,
  scaleLogits: true,
  initializerFactor: 1,
  padTokenId: 0,
  eosTokenId: 1,
  decoderStartTokenId: 0,
};

/** A full config from a partial one (defaults: T5 PEGASUS small), validated (E_ARG naming the field). */
export function t5Config(partial: Partial<T5Config> = {}): T5Config {
  const given = Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined)) as Partial<T5Config>;
  const c: T5Config = { ...DEFAULTS, numDecoderLayers: given.numLayers ?? DEFAULTS.numDecoderLayers, ...given };
  for (const k of ['vocabSize', 'dModel', 'dKv', 'dFf', 'numLayers', 'numDecoderLayers', 'numHeads', 'relativeBuckets', 'relativeMaxDistance'] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) throw new ArgumentError(`t5 config: ${k} must be a positive integer, got ${String(c[k])}`);
  }
  if (c.relativeBuckets % 2 !== 0 || c.relativeBuckets < 4) throw new ArgumentError(`t5 config: relativeBuckets must be even and at least 4, got ${c.relativeBuckets}`);
  if (c.relativeMaxDistance <= c.relativeBuckets / 2) {
    throw new ArgumentError(`t5 config: relativeMaxDistance ${c.relativeMaxDistance} must exceed relativeBuckets / 2 (${c.relativeBuckets / 2})`);
  }
  if (!(c.dropoutRate >= 0 && c.dropoutRate < 1)) throw new ArgumentError(`t5 config: dropoutRate must be in [0, 1), got ${c.dropoutRate}`);
  if (!(c.layerNormEps > 0)) throw new ArgumentError(`t5 config: layerNormEps must be > 0, got ${c.layerNormEps}`);
  for (const k of ['padTokenId', 'eosTokenId', 'decoderStartTokenId'] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 0 || c[k] >= c.vocabSize) throw new ArgumentError(`t5 config: ${k} must be a token id below vocabSize ${c.vocabSize}, got ${String(c[k])}`);
  }
  return c;
}

/** The variant's flags: T5 PEGASUS adds the cross-attention bias and scales the logits; HF mT5 does neither. */
function variantFlags(variant: T5Variant): Pick<T5Config, 'crossPositionBias' | 'scaleLogits'> {
  if (variant !== 't5-pegasus' && variant !== 'hf') throw new ArgumentError(`t5 config: variant must be 't5-pegasus' or 'hf', got ${String(variant)}`);
  const on = variant === 't5-pegasus';
  return { crossPositionBias: on, scaleLogits: on };
}

function fromHfFields(hf: HfT5Config, variant: T5Variant, overrides: Partial<T5Config>, where: string): T5Config {
  const flags = variantFlags(variant);
  if (hf.tieWordEmbeddings) {
    throw new FormatError(`${where}: tie_word_embeddings is true (T5 v1.0); kexue's T5 has the untied LM head of T5 v1.1, mT5 and T5 PEGASUS`);
  }
  const flag = (key: string, fallback: boolean) => (typeof hf.extra[key] === 'boolean' ? (hf.extra[key] as boolean) : fallback);
  return t5Config({
    vocabSize: hf.vocabSize,
    dModel: hf.dModel,
    dKv: hf.dKv,
    dFf: hf.dFf,
    numLayers: hf.numLayers,
    numDecoderLayers: hf.numDecoderLayers,
    numHeads: hf.numHeads,
    relativeBuckets: hf.relativeAttentionNumBuckets,
    relativeMaxDistance: hf.relativeAttentionMaxDistance,
    dropoutRate: hf.dropoutRate,
    layerNormEps: hf.layerNormEpsilon,
    gatedFfn: hf.isGatedAct,
    ffnAct: typeof hf.extra.dense_act_fn === 'string' ? hf.extra.dense_act_fn : hf.denseActFn,
    crossPositionBias: flag('cross_position_bias', flags.crossPositionBias),
    scaleLogits: flag('scale_logits', flags.scaleLogits),
    initializerFactor: hf.initializerFactor,
    padTokenId: hf.padTokenId ?? DEFAULTS.padTokenId,
    eosTokenId: hf.eosTokenId ?? DEFAULTS.eosTokenId,
    decoderStartTokenId: hf.decoderStartTokenId ?? DEFAULTS.decoderStartTokenId,
    ...overrides,
  });
}

/** A config from a parsed T5/mT5 config.json object (E_FORMAT on wrong types; transformers' defaults). */
export function t5ConfigFromHF(json: Record<string, unknown>, variant: T5Variant = 't5-pegasus', overrides: Partial<T5Config> = {}): T5Config {
  return fromHfFields(parseHfT5Config(json, 'T5 config', 'mt5'), variant, overrides, 'T5 config');
}

/** A config from a T5/mT5 config.json file (E_IO unreadable; E_FORMAT naming the file and the key). */
export function readT5Config(file: string, variant: T5Variant = 't5-pegasus', overrides: Partial<T5Config> = {}): T5Config {
  return fromHfFields(readHfT5Config(file, 'mt5'), variant, overrides, file);
}
