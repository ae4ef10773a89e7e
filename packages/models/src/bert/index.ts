/** BERT and RoFormer encoders with Hugging Face names, and their masked-LM head. */
export { bertConfig, bertConfigFromHF, type BertConfig } from './config.js';
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
