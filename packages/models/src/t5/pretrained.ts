/**
 * Where `T5ForConditionalGeneration.fromPretrained` finds a checkpoint, and its options: a Hugging
 * Face checkpoint directory (config.json beside model.safetensors or pytorch_model.bin, as the
 * published T5 PEGASUS PyTorch weights come), or the files named one by one.
 */
import path from 'node:path';

import type { Philox } from '@kexue/core-cuda';

import { findWeightsFile } from '../checkpoint/weights.js';
import { readT5Config, t5Config, type T5Config, type T5Variant } from './config.js';

/** A directory holding config.json and the weights, or `{ config, weights }`: a config.json path or a config, and a weights file. */
export type T5PretrainedSource = string | { config: string | Partial<T5Config>; weights: string };

export interface T5PretrainedOptions {
  /** Where the model lives: 'cpu' (default), 'cuda' or 'cuda:N'. The weights are read straight onto it. */
  device?: string;
  /**
   * How the weights are meant to run: 't5-pegasus' (default: cross-attention position bias and the
   * d_model^−1/2 logit scale, as bert4keras trained T5 PEGASUS) or 'hf' (transformers' mT5: neither).
   */
  variant?: T5Variant;
  /** Config fields that replace the checkpoint's. */
  config?: Partial<T5Config>;
  /** Dropout generator, for fine-tuning after `train()`; default Philox(0). */
  dropoutRng?: Philox;
}

/** The config (the checkpoint's, with the variant and `overrides`) and the weights file of a source. */
export function resolveT5Pretrained(source: T5PretrainedSource, variant: T5Variant = 't5-pegasus', overrides: Partial<T5Config> = {}): { config: T5Config; weightsFile: string } {
  if (typeof source === 'string') return { config: readT5Config(path.join(source, 'config.json'), variant, overrides), weightsFile: findWeightsFile(source) };
  const config = typeof source.config === 'string' ? readT5Config(source.config, variant, overrides) : t5Config({ ...source.config, ...overrides });
  return { config, weightsFile: source.weights };
}
