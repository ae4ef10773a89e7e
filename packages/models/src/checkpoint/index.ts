/**
 * Checkpoint configs and weights: validated readers of Hugging Face config.json files (BERT,
 * RoFormer, T5, mT5) and of a checkpoint's weights file. The tensor formats themselves are kx.io's
 * (@kexue/core-cuda): loadSafetensors, loadTorch.
 */
export { readHfConfig, readConfigJson, parseHfConfig, readHfBertConfig, readHfT5Config, type HfModelConfig } from './config.js';
export { parseHfBertConfig, type HfBertConfig } from './bert_config.js';
export { parseHfT5Config, type HfT5Config } from './t5_config.js';
export { findWeightsFile, readWeightsFile, WEIGHTS_FILES } from './weights.js';
export { type FieldKind } from './fields.js';
