/** BERT and RoFormer encoders with Hugging Face names, their masked-LM head, and their checkpoint loaders. */
export { bertConfig, bertConfigFromHF, readBertConfig, type BertConfig } from './config.js';
export {
  BertModel,
  BertForMaskedLM,
  BertEmbeddings,
  BertLayer,
  BertAttention,
  BertIntermediate,
  DenseResidualNorm,
  type EncoderOutput,
  type EncoderInputs,
  type ModelSeeds,
} from './model.js';
export { type PretrainedSource, type PretrainedOptions } from './pretrained.js';
