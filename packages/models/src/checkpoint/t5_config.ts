/**
 * Hugging Face T5 and mT5 configs (config.json with "model_type" "t5" or "mt5"; T5 PEGASUS ports
 * use "mt5"). Defaults are those of transformers' T5Config and MT5Config, which differ (mT5: a
 * 250112 vocabulary, d_ff 1024, 8 layers, 6 heads, gated GELU, untied embeddings).
 */
import { FormatError } from '@kexue/core-cuda';

import { field, readFields, type Fields } from './fields.js';

function t5Fields(mt5: boolean) {
  return {
    vocabSize: field('vocab_size', 'positiveInt', mt5 ? 250112 : 32128),
    dModel: field('d_model', 'positiveInt', 512),
    dKv: field('d_kv', 'positiveInt', 64),
    dFf: field('d_ff', 'positiveInt', mt5 ? 1024 : 2048),
    numLayers: field('num_layers', 'positiveInt', mt5 ? 8 : 6),
    /** null in the file means "as many as num_layers" (resolved on reading). */
    numDecoderLayers: field('num_decoder_layers', 'optionalInt', null),
    numHeads: field('num_heads', 'positiveInt', mt5 ? 6 : 8),
    relativeAttentionNumBuckets: field('relative_attention_num_buckets', 'positiveInt', 32),
    relativeAttentionMaxDistance: field('relative_attention_max_distance', 'positiveInt', 128),
    dropoutRate: field('dropout_rate', 'probability', 0.1),
    layerNormEpsilon: field('layer_norm_epsilon', 'positiveNumber', 1e-6),
    initializerFactor: field('initializer_factor', 'positiveNumber', 1.0),
    feedForwardProj: field('feed_forward_proj', 'string', mt5 ? 'gated-gelu' : 'relu'),
    tieWordEmbeddings: field('tie_word_embeddings', 'boolean', !mt5),
    isEncoderDecoder: field('is_encoder_decoder', 'boolean', true),
    padTokenId: field('pad_token_id', 'optionalInt', 0),
    eosTokenId: field('eos_token_id', 'optionalInt', 1),
    decoderStartTokenId: field('decoder_start_token_id', 'optionalInt', 0),
    architectures: field('architectures', 'stringList', []),
  };
}

type T5Fields = Fields<ReturnType<typeof t5Fields>>;

/** A T5/mT5 config.json: typed fields (camelCase of the JSON keys) plus every other key in `extra`. */
export interface HfT5Config extends Omit<T5Fields, 'numDecoderLayers'> {
  modelType: 't5' | 'mt5';
  /** num_decoder_layers, or num_layers when the file leaves it out or null. */
  numDecoderLayers: number;
  /** From feed_forward_proj: "gated-gelu" → gated, activation "gelu_new" (as transformers maps it). */
  isGatedAct: boolean;
  denseActFn: string;
  /** Keys this reader does not interpret, as found. */
  extra: Record<string, unknown>;
}

/**
 * Reads a parsed T5/mT5 config.json object. `modelType` decides the defaults when the file has no
 * "model_type"; E_FORMAT on wrong types or an unreadable feed_forward_proj.
 */
export function parseHfT5Config(json: Record<string, unknown>, where = 'T5 config', modelType: 't5' | 'mt5' = 't5'): HfT5Config {
  const type = json.model_type ?? modelType;
  if (type !== 't5' && type !== 'mt5') throw new FormatError(`${where}: "model_type" is ${JSON.stringify(type)}, not "t5" or "mt5"`);
  const { values, extra } = readFields(json, t5Fields(type === 'mt5'), where);
  delete extra.model_type;
  const m = /^(gated-)?([a-z_0-9]+)$/.exec(values.feedForwardProj);
  if (!m) throw new FormatError(`${where}: "feed_forward_proj" is ${JSON.stringify(values.feedForwardProj)}, expected "ACT" or "gated-ACT"`);
  const isGatedAct = m[1] !== undefined;
  const denseActFn = values.feedForwardProj === 'gated-gelu' ? 'gelu_new' : m[2]!;
  for (const [name, id] of [['pad_token_id', values.padTokenId], ['eos_token_id', values.eosTokenId], ['decoder_start_token_id', values.decoderStartTokenId]] as const) {
    if (id !== null && id >= values.vocabSize) throw new FormatError(`${where}: ${name} ${id} is outside the vocabulary (vocab_size ${values.vocabSize})`);
  }
  return {
    modelType: type,
    ...values,
    numDecoderLayers: values.numDecoderLayers ?? values.numLayers,
    isGatedAct,
    denseActFn,
    extra,
  };
}
