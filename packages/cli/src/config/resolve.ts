/**
 * Config files (YAML or JSON, nested or with dotted keys) plus `key=value` overrides → a typed,
 * validated, nested config with every key of the task. Every mistake (unknown key, wrong type,
 * value out of range, a key that cannot change on resume) is a UsageError naming the key: one
 * clear message, exit code 2. A config file that cannot be read is E_IO; one that does not parse
 * is E_FORMAT.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { FormatError, KexueIOError } from '@kexue/core-cuda';
import { parse as parseYaml } from 'yaml';

import { UsageError, suggest } from '../framework/errors.js';
import { DEVICE_NAME, type KeySpec } from './schema.js';

export type FlatConfig = Record<string, string | number | boolean>;
type Value = string | number | boolean;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Flattens nested objects to dotted keys. */
export function flatten(value: Record<string, unknown>, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (isObject(v)) Object.assign(out, flatten(v, `${prefix}${k}.`));
    else out[prefix + k] = v;
  }
  return out;
}

/** Nests dotted keys. */
export function unflatten(flat: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(flat)) {
    const parts = k.split('.');
    let node = out;
    for (const p of parts.slice(0, -1)) node = (node[p] ??= {}) as Record<string, unknown>;
    node[parts[parts.length - 1]!] = v;
  }
  return out;
}

/** Reads a config file: .yaml/.yml as YAML, anything else as JSON; its top level must be a mapping. */
export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new KexueIOError(`cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  const yaml = /\.ya?ml$/i.test(file);
  let value: unknown;
  try {
    value = yaml ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw new FormatError(`config file ${file} is not valid ${yaml ? 'YAML' : 'JSON'}: ${(err as Error).message.split('\n')[0]}`);
  }
  if (value === null || value === undefined) return {};
  if (!isObject(value)) throw new FormatError(`config file ${file} must hold a mapping of keys to values`);
  return flatten(value);
}

function describe(spec: KeySpec): string {
  if (spec.check) return spec.check.expected;
  return spec.choices ? `one of ${spec.choices.join(', ')}` : `${spec.type === 'integer' ? 'an integer' : spec.type === 'number' ? 'a number' : spec.type === 'boolean' ? 'true or false' : 'a string'}`;
}

/** Checks and converts one value (a string from the command line, or a typed file value). */
export function convertValue(spec: KeySpec, raw: unknown, where: string, command: string): Value {
  const bad = () => new UsageError(`config key ${spec.key}${where}: expected ${describe(spec)}, got ${JSON.stringify(raw)}`, command);
  let v: Value;
  if (spec.type === 'string') {
    if (typeof raw === 'number' && spec.check) raw = String(raw);
    if (typeof raw !== 'string') throw bad();
    v = raw;
    if (spec.choices && !spec.choices.includes(v)) throw bad();
    if (spec.check && !spec.check.ok(v)) throw bad();
    return v;
  }
  if (spec.type === 'boolean') {
    if (typeof raw === 'boolean') return raw;
    if (raw === 'true' || raw === 'false') return raw === 'true';
    throw bad();
  }
  let n: number;
  if (typeof raw === 'number') n = raw;
  else if (typeof raw === 'string' && raw.trim() !== '') n = Number(raw);
  else throw bad();
  if (!Number.isFinite(n) || (spec.type === 'integer' && !Number.isInteger(n))) throw bad();
  if (spec.min !== undefined && n < spec.min) throw new UsageError(`config key ${spec.key}${where}: must be at least ${spec.min}, got ${n}`, command);
  if (spec.max !== undefined && n > spec.max) throw new UsageError(`config key ${spec.key}${where}: must be at most ${spec.max}, got ${n}`, command);
  return n;
}

function lookup(keys: readonly KeySpec[], key: string, where: string, command: string): KeySpec {
  const spec = keys.find((k) => k.key === key);
  if (spec) return spec;
  const hint = suggest(key, keys.map((k) => k.key));
  throw new UsageError(`unknown config key '${key}'${where}${hint ? ` (did you mean '${hint}'?)` : ''}; 'kexue ${command} --help' lists the keys`, command);
}

/** Parses `key=value` arguments (UsageError for one without '=' or an unknown key); a later value of a key wins. */
export function parseOverrides(keys: readonly KeySpec[], args: readonly string[], command: string): FlatConfig {
  const out: FlatConfig = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq <= 0) throw new UsageError(`expected key=value, got '${arg}'`, command);
    const key = arg.slice(0, eq);
    const spec = lookup(keys, key, '', command);
    out[key] = convertValue(spec, arg.slice(eq + 1), '', command);
  }
  return out;
}

/** The value of a --device option (eval, predict), checked as the `device` key is; UsageError otherwise. */
export function checkDeviceOption(value: string, command: string): string {
  if (!DEVICE_NAME.ok(value)) throw new UsageError(`--device: expected ${DEVICE_NAME.expected}, got ${JSON.stringify(value)}`, command);
  return value;
}

/**
 * The resolved config: defaults, then the file's values, then the overrides; nested. `base`
 * (a resumed run's config) replaces the defaults and the file, except for the resumable
 * (run-control) keys, which start from their defaults (but those kept on resume: the device);
 * only resumable keys may be overridden.
 */
export function resolveConfig(
  task: string,
  keys: readonly KeySpec[],
  o: { file?: string; overrides: readonly string[]; base?: Record<string, unknown>; command: string; cwd: string },
): Record<string, unknown> {
  const flat: Record<string, Value> = Object.fromEntries(keys.map((k) => [k.key, k.default]));
  if (o.base) {
    const base = flatten(o.base);
    for (const [k, v] of Object.entries(base)) {
      if (k === 'task') continue;
      // run-control keys (stop_at, threads) start from their defaults again on each resume; the device stays
      const spec = keys.find((s) => s.key === k);
      if (spec?.resumable && !spec.keptOnResume) continue;
      flat[k] = convertValue(lookup(keys, k, ' in the run\'s config.json', o.command), v, ' in the run\'s config.json', o.command);
    }
  }
  if (o.file) {
    const file = path.resolve(o.cwd, o.file);
    for (const [k, v] of Object.entries(readConfigFile(file))) {
      if (k === 'task') {
        if (v !== task) throw new UsageError(`config file ${o.file} is for task ${JSON.stringify(v)}, not ${task}`, o.command);
        continue;
      }
      flat[k] = convertValue(lookup(keys, k, ` in ${o.file}`, o.command), v, ` in ${o.file}`, o.command);
    }
  }
  const overrides = parseOverrides(keys, o.overrides, o.command);
  for (const [k, v] of Object.entries(overrides)) {
    const spec = keys.find((s) => s.key === k)!;
    if (o.base && !spec.resumable && v !== flat[k]) {
      throw new UsageError(`config key ${k} cannot change when resuming a run (only ${keys.filter((s) => s.resumable).map((s) => s.key).join(', ')} can)`, o.command);
    }
    flat[k] = v;
  }
  return { task, ...unflatten(flat) };
}
