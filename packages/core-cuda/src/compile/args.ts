/**
 * A compiled function's arguments and results as trees: tensors are the leaves that vary between
 * calls; numbers, strings, booleans, null and undefined are static (part of the signature), and
 * arrays and plain objects nest them.
 */
import { ArgumentError } from '../errors.js';
import { Tensor } from '../tensor.js';

/** The tensor leaves of the arguments, in order, and the signature they were called with. */
export interface FlatArgs {
  tensors: Tensor[];
  /**
   * Shapes, dtypes and devices of the tensors, the static values and the nesting; a tensor passed
   * twice is named by its first position, so that a call with two different tensors there differs.
   */
  key: string;
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (typeof x !== 'object' || x === null) return false;
  const proto = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

function staticKey(x: unknown): string | undefined {
  if (x === null) return 'null';
  switch (typeof x) {
    case 'undefined':
      return 'undef';
    case 'number':
      return Object.is(x, -0) ? 'n-0' : `n${x}`;
    case 'string':
      return `s${JSON.stringify(x)}`;
    case 'boolean':
      return x ? 'T' : 'F';
  }
  return undefined;
}

/** Flattens the arguments; E_ARG for a leaf that is neither a tensor nor a static value. */
export function flattenArgs(args: readonly unknown[]): FlatArgs {
  const tensors: Tensor[] = [];
  const first = new Map<Tensor, number>();
  const parts: string[] = [];
  const walk = (x: unknown, where: string): void => {
    if (x instanceof Tensor) {
      const seen = first.get(x);
      if (seen !== undefined) parts.push(`=${seen}`);
      else {
        first.set(x, tensors.length);
        parts.push(`t${x.dtype}@${x.device}[${x.shape.join(',')}]`);
      }
      tensors.push(x);
      return;
    }
    const s = staticKey(x);
    if (s !== undefined) {
      parts.push(s);
      return;
    }
    if (Array.isArray(x)) {
      parts.push(`[${x.length}`);
      x.forEach((item, i) => walk(item, `${where}[${i}]`));
      parts.push(']');
      return;
    }
    if (isPlainObject(x)) {
      parts.push('{');
      for (const [k, v] of Object.entries(x)) {
        parts.push(JSON.stringify(k));
        walk(v, `${where}.${k}`);
      }
      parts.push('}');
      return;
    }
    throw new ArgumentError(
      `compiled function: argument ${where} is a ${typeof x === 'object' && x !== null ? (x.constructor?.name ?? 'object') : typeof x}; ` +
        'arguments must be tensors, numbers, strings, booleans, null or undefined, in arrays or plain objects',
    );
  };
  args.forEach((a, i) => walk(a, `#${i}`));
  return { tensors, key: parts.join(' ') };
}

/** A result's shape: where each tensor leaf goes (`leaf`: its position among the leaves). */
export type ResultTemplate =
  | { kind: 'tensor'; leaf: number }
  | { kind: 'empty'; value: null | undefined }
  | { kind: 'array'; items: ResultTemplate[] }
  | { kind: 'record'; entries: [string, ResultTemplate][] };

/** The template of fn's result and its tensor leaves; E_ARG for anything else in it. */
export function resultTemplate(result: unknown): { template: ResultTemplate; leaves: Tensor[] } {
  const leaves: Tensor[] = [];
  const walk = (x: unknown, where: string): ResultTemplate => {
    if (x instanceof Tensor) {
      leaves.push(x);
      return { kind: 'tensor', leaf: leaves.length - 1 };
    }
    if (x === null || x === undefined) return { kind: 'empty', value: x };
    if (Array.isArray(x)) return { kind: 'array', items: x.map((item, i) => walk(item, `${where}[${i}]`)) };
    if (isPlainObject(x)) {
      return { kind: 'record', entries: Object.entries(x).map(([k, v]) => [k, walk(v, `${where}.${k}`)]) };
    }
    throw new ArgumentError(
      `kx.compile: the function returned ${typeof x} at result${where}; it must return tensors (or nothing), in arrays or plain objects`,
    );
  };
  return { template: walk(result, ''), leaves };
}

/** A result of the template's shape with these leaves. */
export function buildResult(template: ResultTemplate, leaves: readonly Tensor[]): unknown {
  switch (template.kind) {
    case 'tensor':
      return leaves[template.leaf];
    case 'empty':
      return template.value;
    case 'array':
      return template.items.map((t) => buildResult(t, leaves));
    case 'record':
      return Object.fromEntries(template.entries.map(([k, t]) => [k, buildResult(t, leaves)]));
  }
}
