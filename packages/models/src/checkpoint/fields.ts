/**
 * Typed reading of a JSON config object by a field table: each field names its JSON key, its kind
 * and its default. A missing (or null, where not allowed) key takes the default; a value of the
 * wrong type or out of range is E_FORMAT naming the key, what was found and what was expected;
 * keys the table does not name are kept, untouched, in `extra`.
 */
import { FormatError } from '@kexue/core-cuda';

/** What a field holds. */
export type FieldKind =
  | 'positiveInt' // integer ≥ 1
  | 'nonNegativeInt' // integer ≥ 0
  | 'int' // any integer
  | 'optionalInt' // integer ≥ 0, or null
  | 'probability' // number in [0, 1)
  | 'positiveNumber' // number > 0
  | 'number' // any finite number
  | 'string'
  | 'optionalString' // string or null
  | 'boolean'
  | 'stringList'; // list of strings

type ValueOf<K extends FieldKind> = K extends 'positiveInt' | 'nonNegativeInt' | 'int' | 'probability' | 'positiveNumber' | 'number'
  ? number
  : K extends 'optionalInt'
    ? number | null
    : K extends 'string'
      ? string
      : K extends 'optionalString'
        ? string | null
        : K extends 'boolean'
          ? boolean
          : string[];

/** One field: its JSON key, kind and default. */
export interface Field<K extends FieldKind = FieldKind> {
  key: string;
  kind: K;
  default: ValueOf<K>;
}

/** A field table: the typed config's property name → its field. */
export type FieldTable = Record<string, Field>;

/** The typed object a table reads to. */
export type Fields<T extends FieldTable> = { -readonly [P in keyof T]: ValueOf<T[P]['kind']> };

export function field<K extends FieldKind>(key: string, kind: K, dflt: ValueOf<K>): Field<K> {
  return { key, kind, default: dflt };
}

const EXPECTED: Record<FieldKind, string> = {
  positiveInt: 'an integer ≥ 1',
  nonNegativeInt: 'an integer ≥ 0',
  int: 'an integer',
  optionalInt: 'an integer ≥ 0 or null',
  probability: 'a number in [0, 1)',
  positiveNumber: 'a number > 0',
  number: 'a finite number',
  string: 'a string',
  optionalString: 'a string or null',
  boolean: 'true or false',
  stringList: 'a list of strings',
};

function valid(kind: FieldKind, v: unknown): boolean {
  const isInt = typeof v === 'number' && Number.isSafeInteger(v);
  switch (kind) {
    case 'positiveInt': return isInt && (v as number) >= 1;
    case 'nonNegativeInt': return isInt && (v as number) >= 0;
    case 'int': return isInt;
    case 'optionalInt': return v === null || (isInt && (v as number) >= 0);
    case 'probability': return typeof v === 'number' && v >= 0 && v < 1;
    case 'positiveNumber': return typeof v === 'number' && Number.isFinite(v) && v > 0;
    case 'number': return typeof v === 'number' && Number.isFinite(v);
    case 'string': return typeof v === 'string';
    case 'optionalString': return v === null || typeof v === 'string';
    case 'boolean': return typeof v === 'boolean';
    case 'stringList': return Array.isArray(v) && v.every((s) => typeof s === 'string');
  }
}

/** Reads `json` by `table`; `where` names the config in messages. */
export function readFields<T extends FieldTable>(json: Record<string, unknown>, table: T, where: string): { values: Fields<T>; extra: Record<string, unknown> } {
  const values: Record<string, unknown> = {};
  const known = new Set<string>();
  for (const [prop, f] of Object.entries(table)) {
    known.add(f.key);
    const v = json[f.key];
    const nullable = f.kind === 'optionalInt' || f.kind === 'optionalString';
    if (v === undefined || (v === null && !nullable)) {
      values[prop] = Array.isArray(f.default) ? [...f.default] : f.default;
      continue;
    }
    if (!valid(f.kind, v)) throw new FormatError(`${where}: "${f.key}" is ${JSON.stringify(v)}, expected ${EXPECTED[f.kind]}`);
    values[prop] = Array.isArray(v) ? [...v] : v;
  }
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) if (!known.has(k)) extra[k] = v;
  return { values: values as Fields<T>, extra };
}
