/** T5 PEGASUS / mT5 v1.1: config, relative position buckets, the encoder–decoder with Hugging Face names, its loader. */
export { t5Config, t5ConfigFromHF, readT5Config, type T5Config, type T5Variant } from './config.js';
export { relativePositionBucket, relativePositionBias } from './relative.js';
export { T5ForConditionalGeneration, T5Stack, T5Block, T5Attention, seq2seqLoss, type T5Inputs, type T5Output, type T5Seeds } from './model.js';
export { type T5PretrainedSource, type T5PretrainedOptions } from './pretrained.js';
export { T5Decoding } from './decoding.js';
