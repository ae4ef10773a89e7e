/**
 * Where `BertModel.fromPretrained` and `BertForMaskedLM.fromPretrained` find a checkpoint, and
 * their options: a Hugging Face checkpoint directory (config.json beside model.safetensors or
 * pytorch_model.bin), or the files named one by one.
 */
import path from 'node:path';

import type { Philox } from '@kexue/core-cuda';

import { findWeightsFile } from '../checkpoint/weights.js';
import { bertConfig, readBertConfig, type BertConfig } from './config.js';

/**
 * A checkpoint: a directory holding config.json and model.safetensors (or pytorch_model.bin), or
 * `{ config, weights }`: a config.json path or a config, and a weights file (.safetensors, or a
 * PyTorch zip checkpoint such as pytorch_model.bin).
 */
export type PretrainedSource = string | { config: string | (Partial<BertConfig> & { kind: BertConfig['kind'] }); weights: string };

/** Options of the fromPretrained loaders. */
export interface PretrainedOptions {
  /** Where the model lives: 'cpu' (default), 'cuda' or 'cuda:N'. The weights are read straight onto it. */
  device?: string;
  /** Config fields that replace the checkpoint's (e.g. `{ pooler: false }` for a checkpoint without a pooler). */
  config?: Partial<BertConfig>;
  /**
   * Where the model's names sit in the file. BertModel: by default '' when the file has
   * `embeddings.word_embeddings.weight`, and 'bert.' / 'roformer.' (the config's kind) when it has
   * them under that, as a BertForMaskedLM or BertForPreTraining file does. BertForMaskedLM: ''.
   */
  prefix?: string;
  /** Ignore the file's entries that no parameter takes (another head's). Default: true when a prefix is used, else false. */
  partial?: boolean;
  /** Dropout generator, for fine-tuning after `train()`; default Philox(0). */
  dropoutRng?: Philox;
}

/** The config (the checkpoint's, with `overrides`) and the weights file of a source; the config is read first. */
export function resolvePretrained(source: PretrainedSource, overrides: Partial<BertConfig> = {}): { config: BertConfig; weightsFile: string } {
  if (typeof source === 'string') return { config: readBertConfig(path.join(source, 'config.json'), overrides), weightsFile: findWeightsFile(source) };
  const config = typeof source.config === 'string' ? readBertConfig(source.config, overrides) : bertConfig({ ...source.config, ...overrides });
  return { config, weightsFile: source.weights };
}
