/**
 * Hugging Face BERT-family configs: config.json with "model_type" "bert" (or "roformer", whose
 * keys are BERT's plus embedding_size and rotary_value), and Google's bert_config.json, which has
 * BERT's keys and no model_type. Defaults are those of transformers' BertConfig / RoFormerConfig.
 */
import { FormatError } from '@kexue/core-cuda';

import { field, readFields, type Fields } from './fields.js';

function bertFields(roformer: boolean) {
  return {
    vocabSize: field('vocab_size', 'positiveInt', roformer ? 50000 : 30522),
    hiddenSize: field('hidden_size', 'positiveInt', 768),
    numHiddenLayers: field('num_hidden_layers', 'positiveInt', 12),
    numAttentionHeads: field('num_attention_heads', 'positiveInt', 12),
    intermediateSize: field('intermediate_size', 'positiveInt', 3072),
    hiddenAct: field('hidden_act', 'string', 'gelu'),
    hiddenDropoutProb: field('hidden_dropout_prob', 'probability', 0.1),
    attentionProbsDropoutProb: field('attention_probs_dropout_prob', 'probability', 0.1),
    maxPositionEmbeddings: field('max_position_embeddings', 'positiveInt', roformer ? 1536 : 512),
    typeVocabSize: field('type_vocab_size', 'nonNegativeInt', 2),
    initializerRange: field('initializer_range', 'positiveNumber', 0.02),
    layerNormEps: field('layer_norm_eps', 'positiveNumber', 1e-12),
    padTokenId: field('pad_token_id', 'optionalInt', 0),
    positionEmbeddingType: field('position_embedding_type', 'string', 'absolute'),
    /** RoFormer: null (or absent) means hidden_size; resolved on reading. */
    embeddingSize: field('embedding_size', 'optionalInt', null),
    /** RoFormer: rotary positions applied to the values too. */
    rotaryValue: field('rotary_value', 'boolean', false),
    architectures: field('architectures', 'stringList', []),
  };
}

type BertFields = Fields<ReturnType<typeof bertFields>>;

/** A BERT/RoFormer config.json: typed fields (camelCase of the JSON keys) plus every other key in `extra`. */
export interface HfBertConfig extends Omit<BertFields, 'embeddingSize'> {
  modelType: 'bert' | 'roformer';
  /** embedding_size, or hidden_size when absent (BERT always has hidden_size). */
  embeddingSize: number;
  /** Keys this reader does not interpret (e.g. "directionality", "pooler_fc_size"), as found. */
  extra: Record<string, unknown>;
}

/**
 * Reads a parsed BERT/RoFormer config.json object. A file without "model_type" is read as BERT.
 * E_FORMAT on wrong types (naming the key) and inconsistent sizes.
 */
export function parseHfBertConfig(json: Record<string, unknown>, where = 'BERT config'): HfBertConfig {
  const type = json.model_type ?? 'bert';
  if (type !== 'bert' && type !== 'roformer') throw new FormatError(`${where}: "model_type" is ${JSON.stringify(type)}, not "bert" or "roformer"`);
  const { values, extra } = readFields(json, bertFields(type === 'roformer'), where);
  delete extra.model_type;
  if (values.hiddenSize % values.numAttentionHeads !== 0) {
    throw new FormatError(`${where}: hidden_size ${values.hiddenSize} is not a multiple of num_attention_heads ${values.numAttentionHeads}`);
  }
  if (values.padTokenId !== null && values.padTokenId >= values.vocabSize) {
    throw new FormatError(`${where}: pad_token_id ${values.padTokenId} is outside the vocabulary (vocab_size ${values.vocabSize})`);
  }
  const embeddingSize = values.embeddingSize ?? values.hiddenSize;
  if (embeddingSize === 0) throw new FormatError(`${where}: "embedding_size" is 0`);
  if (type === 'bert' && embeddingSize !== values.hiddenSize) {
    throw new FormatError(`${where}: embedding_size ${embeddingSize} differs from hidden_size ${values.hiddenSize} (BERT has no embedding projection)`);
  }
  return { modelType: type, ...values, embeddingSize, extra };
}
