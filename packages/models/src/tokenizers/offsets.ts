/**
 * Character spans ↔ token spans through an encoding's offsets (NER labels are character spans,
 * the model sees tokens). Spans are [start, end), in the UTF-16 code units that index JS strings;
 * special tokens and padding ([0, 0] offsets) never match.
 */
import { ArgumentError } from '@kexue/core-cuda';
import type { Offset } from './encoding.js';

function isEmpty(o: Offset): boolean {
  return o[1] <= o[0];
}

function checkSpan(start: number, end: number, what: string): void {
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start) {
    throw new ArgumentError(`${what} [${start}, ${end}) is not a valid span`);
  }
}

/** The index of the token whose span contains character `index`, or -1 (whitespace, dropped characters). */
export function charToToken(offsets: readonly Offset[], index: number): number {
  if (!Number.isInteger(index) || index < 0) throw new ArgumentError(`character index must be a non-negative integer, got ${index}`);
  for (let t = 0; t < offsets.length; t++) {
    const o = offsets[t]!;
    if (!isEmpty(o) && o[0] <= index && index < o[1]) return t;
  }
  return -1;
}

/**
 * The tokens [first, end) that overlap the character span [start, end), or null when no token
 * does (the span covers only whitespace or dropped characters, or was truncated away).
 */
export function charSpanToTokenSpan(offsets: readonly Offset[], start: number, end: number): [number, number] | null {
  checkSpan(start, end, 'character span');
  let first = -1;
  let last = -1;
  for (let t = 0; t < offsets.length; t++) {
    const o = offsets[t]!;
    if (isEmpty(o) || o[1] <= start || o[0] >= end) continue;
    if (first < 0) first = t;
    last = t;
  }
  return first < 0 ? null : [first, last + 1];
}

/**
 * The character span [start, end) covered by tokens [first, end), special tokens skipped, or
 * null when they are all special or padding.
 */
export function tokenSpanToCharSpan(offsets: readonly Offset[], first: number, end: number): [number, number] | null {
  checkSpan(first, end, 'token span');
  if (end > offsets.length) throw new ArgumentError(`token span [${first}, ${end}) goes past the ${offsets.length} tokens`);
  let s = Infinity;
  let e = -Infinity;
  for (let t = first; t < end; t++) {
    const o = offsets[t]!;
    if (isEmpty(o)) continue;
    s = Math.min(s, o[0]);
    e = Math.max(e, o[1]);
  }
  return s === Infinity ? null : [s, e];
}
