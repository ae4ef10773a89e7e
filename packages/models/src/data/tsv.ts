/** Tab-separated lines with a fixed number of non-empty columns. */
import { Malformed } from './errors.js';

/**
 * Splits a line into exactly `names.length` tab-separated fields, each non-empty after trimming
 * (fields are returned as they are, not trimmed). A tab inside a field cannot be told from a
 * separator, so a line with more fields is malformed. No CSV quoting is undone: quotes are text.
 */
export function splitColumns(line: string, no: number, names: readonly string[]): string[] {
  const fields = line.split('\t');
  if (fields.length !== names.length) {
    throw new Malformed(no, `expected ${names.length} tab-separated columns (${names.join(', ')}), got ${fields.length}`);
  }
  for (let i = 0; i < fields.length; i++) {
    if (fields[i]!.trim().length === 0) throw new Malformed(no, `column ${i + 1} (${names[i]}) is empty`);
  }
  return fields;
}
