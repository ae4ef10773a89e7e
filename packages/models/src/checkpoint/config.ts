/**
 * `config.json` files of Hugging Face checkpoints: read, parsed, and dispatched on "model_type"
 * (a file without one is recognised by its keys: "d_model" → T5, "hidden_size" → BERT, as in
 * Google's bert_config.json). A missing or unreadable file is E_IO; invalid JSON, an unknown model
 * type, wrong types and inconsistent sizes are E_FORMAT naming the file and the key.
 */
import { readFileSync } from 'node:fs';

import { FormatError, ioError } from '@kexue/core-cuda';

import { parseHfBertConfig, type HfBertConfig } from './bert_config.js';
import { parseHfT5Config, type HfT5Config } from './t5_config.js';

/** Any config this reader understands, told apart by `modelType`. */
export type HfModelConfig = HfBertConfig | HfT5Config;

/** The parsed JSON object of a config file (E_IO unreadable, E_FORMAT not a JSON object). */
export function readConfigJson(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf-8');
  } catch (err) {
    throw ioError(`cannot read ${file}`, err);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new FormatError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new FormatError(`${file}: a config must be a JSON object`);
  return json as Record<string, unknown>;
}

/** Parses a config object of any supported model type (see the module comment). */
export function parseHfConfig(json: Record<string, unknown>, where = 'config'): HfModelConfig {
  const type = json.model_type;
  if (type === 'bert' || type === 'roformer') return parseHfBertConfig(json, where);
  if (type === 't5' || type === 'mt5') return parseHfT5Config(json, where);
  if (type !== undefined) throw new FormatError(`${where}: model_type ${JSON.stringify(type)} is not supported (bert, roformer, t5, mt5)`);
  if ('d_model' in json) return parseHfT5Config(json, where);
  if ('hidden_size' in json) return parseHfBertConfig(json, where);
  throw new FormatError(`${where}: no "model_type", and neither "hidden_size" (BERT) nor "d_model" (T5) to tell the model`);
}

/** Reads a config.json of any supported model type. */
export function readHfConfig(file: string): HfModelConfig {
  return parseHfConfig(readConfigJson(file), file);
}

/** Reads a BERT/RoFormer config.json (or Google's bert_config.json); E_FORMAT if it is another model's. */
export function readHfBertConfig(file: string): HfBertConfig {
  return parseHfBertConfig(readConfigJson(file), file);
}

/** Reads a T5/mT5 config.json; `modelType` picks the defaults when the file does not say. */
export function readHfT5Config(file: string, modelType: 't5' | 'mt5' = 't5'): HfT5Config {
  return parseHfT5Config(readConfigJson(file), file, modelType);
}
