/**
 * A task's config, declared once: each key's type, default, range or choices, one-line doc and
 * whether a resume may change it. The TypeScript type of a resolved config is inferred from the
 * declaration (ConfigOf), each value is checked by a zod schema made from it, and the CLI derives
 * `key=value` overrides, config-file keys and `--help` from the same keys.
 *
 * A resolved config is nested by the dots (`train.batch_size` → `{ train: { batch_size } }`) with
 * every key present, plus `task`; that is what a run writes to RUN/config.json.
 */
import path from 'node:path';

import { ArgumentError } from '@kexue/core-cuda';
import { z } from 'zod';

import { suggest } from '../suggest.js';

export type KeyType = 'integer' | 'number' | 'string' | 'boolean';
type Value = string | number | boolean;

/** One config key. Made by the builders below (integer, number, string, choice, boolean). */
export interface Key<T extends Value = Value> {
  readonly type: KeyType;
  readonly default: T;
  /** One line for --help. */
  readonly doc: string;
  readonly min?: number;
  readonly max?: number;
  readonly choices?: readonly string[];
  /** What a valid value is, for messages: "an integer", "one of egp, gp". */
  readonly expected: string;
  /** A path, resolved against the working directory when set; 'file' must exist when the run starts. */
  readonly path?: 'file' | 'dir';
  /** A resume may change it (run control: it changes no computed value, or only its rounding). */
  readonly resumable: boolean;
  /** With resumable: a resume keeps the run's value unless overridden (the others start from their defaults again). */
  readonly keptOnResume: boolean;
  /** How --help shows the default, given the other values (optim.lr: the chosen optimizer's rate). */
  readonly showDefault?: (values: FlatConfig) => string;
  readonly schema: z.ZodType<T>;
}

/** Keys nested by section: `{ model: { hidden: integer(...) } }`. */
export interface ConfigSpec {
  readonly [name: string]: Key | ConfigSpec;
}

/** The typed config a spec resolves to. */
export type ConfigOf<S extends ConfigSpec> = { -readonly [K in keyof S]: S[K] extends Key<infer T> ? T : S[K] extends ConfigSpec ? ConfigOf<S[K]> : never };

/** Some values of a config, nested (what code gives a task: `{ model: { hidden: 32 } }`). */
export type ConfigValues<C> = { [K in keyof C]?: C[K] extends object ? ConfigValues<C[K]> : C[K] };

/** Values by dotted key. */
export type FlatConfig = Record<string, Value>;

interface KeyOptions {
  resumable?: boolean;
  keptOnResume?: boolean;
  showDefault?: (values: FlatConfig) => string;
}

interface RangeOptions extends KeyOptions {
  min?: number;
  max?: number;
}

function make<T extends Value>(type: KeyType, dflt: T, doc: string, expected: string, schema: z.ZodType<T>, o: KeyOptions & RangeOptions & { choices?: readonly string[]; path?: 'file' | 'dir' }): Key<T> {
  return {
    type,
    default: dflt,
    doc,
    expected,
    schema,
    resumable: o.resumable ?? false,
    keptOnResume: o.keptOnResume ?? false,
    ...(o.min !== undefined ? { min: o.min } : {}),
    ...(o.max !== undefined ? { max: o.max } : {}),
    ...(o.choices ? { choices: o.choices } : {}),
    ...(o.path ? { path: o.path } : {}),
    ...(o.showDefault ? { showDefault: o.showDefault } : {}),
  };
}

function ranged(s: z.ZodNumber, o: RangeOptions): z.ZodNumber {
  let out = s;
  if (o.min !== undefined) out = out.min(o.min);
  if (o.max !== undefined) out = out.max(o.max);
  return out;
}

/** An integer key. */
export function integer(dflt: number, doc: string, o: RangeOptions = {}): Key<number> {
  return make('integer', dflt, doc, 'an integer', ranged(z.number().int(), o), o);
}

/** A finite number key. */
export function number(dflt: number, doc: string, o: RangeOptions = {}): Key<number> {
  return make('number', dflt, doc, 'a number', ranged(z.number(), o), o);
}

/** A boolean key (`true` / `false` on the command line). */
export function boolean(dflt: boolean, doc: string, o: KeyOptions = {}): Key<boolean> {
  return make('boolean', dflt, doc, 'true or false', z.boolean(), o);
}

/** One of some strings. */
export function choice<const C extends readonly [string, ...string[]]>(choices: C, dflt: C[number], doc: string, o: KeyOptions = {}): Key<C[number]> {
  return make('string', dflt, doc, `one of ${choices.join(', ')}`, z.enum(choices) as unknown as z.ZodType<C[number]>, { ...o, choices });
}

/** A string key; `rule` restricts it (a number in a config file is then read as its string). */
export function string(dflt: string, doc: string, o: KeyOptions & { rule?: { test: (v: string) => boolean; expected: string } } = {}): Key<string> {
  const rule = o.rule;
  return make('string', dflt, doc, rule?.expected ?? 'a string', rule ? z.string().refine(rule.test) : z.string(), o);
}

/** A path key (relative paths are resolved against the working directory; '' = none). */
export function pathKey(kind: 'file' | 'dir', dflt: string, doc: string): Key<string> {
  return make('string', dflt, doc, 'a path', z.string(), { path: kind });
}

/**
 * A mistake in what was asked: an unknown config key, a wrong type, a value out of range, a key a
 * resume may not change, missing or conflicting command arguments. E_ARG; the CLI reports it as a
 * usage mistake (exit code 2, with a pointer to --help).
 */
export class RequestError extends ArgumentError {
  constructor(message: string) {
    super(message);
    this.name = 'RequestError';
  }
}

const isKey = (v: Key | ConfigSpec): v is Key => 'schema' in v && 'expected' in v;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The keys of a spec by dotted name, in declaration order. */
export function configKeys(spec: ConfigSpec, prefix = ''): [string, Key][] {
  return Object.entries(spec).flatMap(([name, v]): [string, Key][] => (isKey(v) ? [[prefix + name, v]] : configKeys(v, `${prefix}${name}.`)));
}

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

/** Checks and converts one value: a string from the command line, or a typed value from a file. */
export function convertValue(name: string, key: Key, raw: unknown, where = ''): Value {
  const bad = () => new RequestError(`config key ${name}${where}: expected ${key.expected}, got ${JSON.stringify(raw)}`);
  let v: unknown = raw;
  if (key.type === 'integer' || key.type === 'number') {
    if (typeof raw === 'string') v = raw.trim() === '' ? NaN : Number(raw);
    if (typeof v !== 'number' || !Number.isFinite(v)) throw bad();
  } else if (key.type === 'boolean') {
    if (raw === 'true' || raw === 'false') v = raw === 'true';
  } else if (typeof raw === 'number' && key.expected !== 'a string' && !key.choices && !key.path) {
    v = String(raw); // a rule-checked string (loss_scale: 256 in a YAML file)
  }
  const r = key.schema.safeParse(v);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  if (issue?.code === 'too_small') throw new RequestError(`config key ${name}${where}: must be at least ${key.min}, got ${String(v)}`);
  if (issue?.code === 'too_big') throw new RequestError(`config key ${name}${where}: must be at most ${key.max}, got ${String(v)}`);
  throw bad();
}

function lookup(keys: ReadonlyMap<string, Key>, name: string, where: string): Key {
  const key = keys.get(name);
  if (key) return key;
  const hint = suggest(name, [...keys.keys()]);
  throw new RequestError(`unknown config key '${name}'${where}${hint ? ` (did you mean '${hint}'?)` : ''}; --help lists the keys`);
}

/** Parses `key=value` arguments; a later value of a key wins. */
export function parseOverrides(spec: ConfigSpec, args: readonly string[]): FlatConfig {
  const keys = new Map(configKeys(spec));
  const out: FlatConfig = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq <= 0) throw new RequestError(`expected key=value, got '${arg}'`);
    const name = arg.slice(0, eq);
    out[name] = convertValue(name, lookup(keys, name, ''), arg.slice(eq + 1));
  }
  return out;
}

/** Where a run's config comes from, in order: a resumed run's config, a config file, values given in code, key=value overrides. */
export interface ConfigSources {
  /** The config.json of a run being resumed: it replaces the defaults and the file, except for the resumable keys. */
  base?: Record<string, unknown>;
  /** A config file's values (nested or dotted) and its name for messages. */
  file?: { name: string; values: Record<string, unknown> };
  /** Values given in code (nested or dotted), checked like a file's. */
  values?: Record<string, unknown>;
  overrides?: readonly string[];
  /** Relative path values are resolved against it (default process.cwd()). */
  cwd?: string;
}

/**
 * The resolved config of a task: defaults, then the file's values, then the overrides. With a
 * base (a resumed run), the base replaces defaults and file, except that resumable keys start from
 * their defaults again (but those kept on resume: the device), and only resumable keys may be
 * overridden. Every mistake is a RequestError naming the key.
 */
export function resolveConfig<S extends ConfigSpec>(task: string, spec: S, sources: ConfigSources): ConfigOf<S> & { task: string } {
  const list = configKeys(spec);
  const keys = new Map(list);
  const flat: FlatConfig = Object.fromEntries(list.map(([name, k]) => [name, k.default]));
  if (sources.base) {
    const where = " in the run's config.json";
    for (const [name, v] of Object.entries(flatten(sources.base))) {
      if (name === 'task') continue;
      const key = lookup(keys, name, where);
      if (key.resumable && !key.keptOnResume) continue;
      flat[name] = convertValue(name, key, v, where);
    }
  }
  const layers = [sources.file, sources.values && { name: '', values: sources.values }];
  for (const layer of layers) {
    if (!layer) continue;
    const where = layer.name ? ` in ${layer.name}` : '';
    for (const [name, v] of Object.entries(flatten(layer.values))) {
      if (name === 'task') {
        if (v !== task) throw new RequestError(`config${where} is for task ${JSON.stringify(v)}, not ${task}`);
        continue;
      }
      flat[name] = convertValue(name, lookup(keys, name, where), v, where);
    }
  }
  for (const [name, v] of Object.entries(parseOverrides(spec, sources.overrides ?? []))) {
    if (sources.base && !keys.get(name)!.resumable && v !== flat[name]) {
      const resumable = list.filter(([, k]) => k.resumable).map(([n]) => n);
      throw new RequestError(`config key ${name} cannot change when resuming a run (only ${resumable.join(', ')} can)`);
    }
    flat[name] = v;
  }
  for (const [name, key] of list) {
    if (key.path && flat[name] !== '') flat[name] = path.resolve(sources.cwd ?? process.cwd(), flat[name] as string);
  }
  return { task, ...unflatten(flat) } as ConfigOf<S> & { task: string };
}

/**
 * The values --help shows: the defaults with the overrides that parse (a bad one is left out, so
 * that help still shows), used to show defaults that depend on other keys.
 */
export function previewValues(spec: ConfigSpec, overrides: readonly string[]): FlatConfig {
  const flat: FlatConfig = Object.fromEntries(configKeys(spec).map(([name, k]) => [name, k.default]));
  for (const arg of overrides) {
    try {
      Object.assign(flat, parseOverrides(spec, [arg]));
    } catch {
      // shown with its default
    }
  }
  return flat;
}
