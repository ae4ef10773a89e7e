/** Shape arithmetic shared by the ops' validation. */
import { ArgumentError, ShapeError } from './errors.js';

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function fmtShape(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

/** NumPy broadcasting of two shapes; E_SHAPE when they do not broadcast. */
export function broadcastShapes(a: readonly number[], b: readonly number[], op = 'broadcast'): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(`${op}: shapes ${fmtShape(a)} and ${fmtShape(b)} do not broadcast`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** A possibly negative axis made absolute; E_ARG when out of range. */
export function normalizeAxis(axis: number, rank: number, op = 'axis'): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= Math.max(rank, 1)) {
    throw new ArgumentError(`${op}: axis ${axis} is out of range for rank ${rank}`);
  }
  return axis < 0 ? axis + rank : axis;
}

/** Axes made absolute, sorted and checked for duplicates; undefined or [] means all axes. */
export function normalizeAxes(axes: number | readonly number[] | undefined, rank: number, op = 'axes'): number[] {
  if (axes === undefined) return [...Array(rank).keys()];
  const list = typeof axes === 'number' ? [axes] : [...axes];
  if (list.length === 0) return [...Array(rank).keys()];
  const out = [...new Set(list.map((a) => normalizeAxis(a, rank, op)))].sort((x, y) => x - y);
  if (out.length !== list.length) throw new ArgumentError(`${op}: repeated axis in [${list.join(', ')}]`);
  return out;
}
