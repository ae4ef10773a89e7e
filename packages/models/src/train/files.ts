/**
 * Small file helpers for run directories: atomic text/JSON writes (temporary file, fsync, rename,
 * through core-cuda's writer) and JSON reads that turn failures into typed errors naming the file.
 */
import { readFileSync } from 'node:fs';

import { FormatError, io, ioError } from '@kexue/core-cuda';

/** Writes `text` to `file` atomically: readers see the old file or the new one, never a mix. */
export async function writeTextAtomic(file: string, text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  await io.writeFileAtomic(file, async (write) => write(bytes));
}

/** Writes `value` as pretty JSON (with a final newline) atomically. */
export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  await writeTextAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}

/** Reads a JSON file: E_IO when it cannot be read, E_FORMAT when it is not JSON. */
export function readJson(file: string, what = 'file'): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw ioError(`cannot read ${what} ${file}`, err);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new FormatError(`${what} ${file} is not valid JSON: ${(err as Error).message}`);
  }
}
