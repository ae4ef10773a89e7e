/** Option checking shared by the optimizers: every bad option is an ArgumentError (E_ARG). */
import { ArgumentError } from '@kexue/core-cuda';

/** E_ARG unless opts is a plain object whose keys are all in `allowed`. */
export function checkKeys(opts: unknown, allowed: readonly string[], where: string): Record<string, unknown> {
  if (opts === undefined) return {};
  if (opts === null || typeof opts !== 'object' || Array.isArray(opts)) {
    throw new ArgumentError(`${where}: options must be an object, got ${opts === null ? 'null' : typeof opts}`);
  }
  for (const key of Object.keys(opts)) {
    if (!allowed.includes(key)) {
      throw new ArgumentError(`${where}: unknown option '${key}' (known: ${allowed.join(', ')})`);
    }
  }
  return opts as Record<string, unknown>;
}

export interface NumberRule {
  min?: number;
  max?: number;
  /** min/max excluded */
  minExclusive?: boolean;
  maxExclusive?: boolean;
  integer?: boolean;
}

/** A finite number within the rule's range, or the fallback when value is undefined. */
export function numberOption(value: unknown, fallback: number, name: string, where: string, rule: NumberRule = {}): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new ArgumentError(`${where}: ${name} must be a finite number, got ${String(value)}`);
  }
  const bad =
    (rule.integer && !Number.isInteger(value)) ||
    (rule.min !== undefined && (rule.minExclusive ? value <= rule.min : value < rule.min)) ||
    (rule.max !== undefined && (rule.maxExclusive ? value >= rule.max : value > rule.max));
  if (bad) {
    const lo = rule.min === undefined ? '' : `${rule.minExclusive ? '>' : '>='} ${rule.min}`;
    const hi = rule.max === undefined ? '' : `${rule.maxExclusive ? '<' : '<='} ${rule.max}`;
    const kind = rule.integer ? 'an integer ' : '';
    throw new ArgumentError(`${where}: ${name} must be ${kind}${[lo, hi].filter(Boolean).join(' and ')}, got ${value}`);
  }
  return value;
}

/** A boolean, or the fallback when value is undefined. */
export function booleanOption(value: unknown, fallback: boolean, name: string, where: string): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new ArgumentError(`${where}: ${name} must be a boolean, got ${String(value)}`);
  return value;
}

/** A learning rate: finite and >= 0. */
export function learningRateOption(value: unknown, fallback: number, where: string): number {
  return numberOption(value, fallback, 'learningRate', where, { min: 0 });
}

/** The numbers and booleans of a record as `number` and `boolean` (not the literals written). */
export type Widened<T> = { readonly [K in keyof T]: T[K] extends boolean ? boolean : T[K] extends number ? number : T[K] };

/**
 * An optimizer's defaults: `values` frozen, typed as numbers and booleans. The doc comment of each
 * entry is that option's (OptionsOf in optimizer.ts makes the options from them).
 */
export function frozenDefaults<T extends Record<string, number | boolean>>(values: T): Widened<T> {
  return Object.freeze(values) as Widened<T>;
}

/** The number option `key`: from opts, else from defaults, checked by rule (see numberOption). */
export function numberOf<K extends string>(opts: Record<string, unknown>, defaults: Readonly<Record<K, number>>, key: K, where: string, rule: NumberRule = {}): number {
  return numberOption(opts[key], defaults[key], key, where, rule);
}
