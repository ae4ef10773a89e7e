/** `--config FILE` of `kexue train`: a YAML or JSON file of config values (nested or with dotted keys). */
import { readFileSync } from 'node:fs';

import { parse as parseYaml } from 'yaml';

/**
 * Reads a config file: .yaml/.yml as YAML, anything else as JSON; E_IO unreadable, E_FORMAT not a
 * mapping. (The core, whose errors these are, is loaded here rather than with the CLI, so that
 * `kexue --help` works without the native addon.)
 */
export async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  const { FormatError, ioError } = await import('@kexue/core-cuda');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw ioError(`cannot read config file ${file}`, err);
  }
  const yaml = /\.ya?ml$/i.test(file);
  let value: unknown;
  try {
    value = yaml ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw new FormatError(`config file ${file} is not valid ${yaml ? 'YAML' : 'JSON'}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new FormatError(`config file ${file} must hold a mapping of keys to values`);
  return value as Record<string, unknown>;
}
