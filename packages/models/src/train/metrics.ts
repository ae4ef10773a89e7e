/**
 * metrics.jsonl: one JSON object a line, appended as training goes. Every record has `step` (the
 * optimizer update it was written after) and `kind` ('train' or 'eval'). On resume the records
 * written after the checkpoint's step (by the interrupted process) are dropped, so the file of a
 * resumed run reads like that of a run that was never interrupted.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';

import { FormatError, ioError } from '@kexue/core-cuda';

import { writeTextAtomic } from './files.js';

/** One metrics record. */
export interface MetricsRecord {
  kind: 'train' | 'eval';
  step: number;
  [key: string]: unknown;
}

/** Reads metrics.jsonl (E_IO unreadable, E_FORMAT a line that is not a JSON object with a step). */
export function readMetrics(file: string): MetricsRecord[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw ioError(`cannot read ${file}`, err);
  }
  const out: MetricsRecord[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch {
      throw new FormatError(`${file}:${i + 1}: not a JSON object`);
    }
    if (typeof rec !== 'object' || rec === null || typeof (rec as MetricsRecord).step !== 'number') throw new FormatError(`${file}:${i + 1}: a record needs a numeric "step"`);
    out.push(rec as MetricsRecord);
  });
  return out;
}

/** Appends records to a metrics.jsonl file. */
export class MetricsLog {
  readonly file: string;

  constructor(file: string) {
    this.file = file;
  }

  /** Appends one record as a line. */
  append(record: MetricsRecord): void {
    try {
      appendFileSync(this.file, `${JSON.stringify(record)}\n`);
    } catch (err) {
      throw ioError(`cannot write ${this.file}`, err);
    }
  }

  /** Drops the records written after `step` (atomically); a missing file stays missing. */
  async truncateAfter(step: number): Promise<number> {
    if (!existsSync(this.file)) return 0;
    const records = readMetrics(this.file);
    const kept = records.filter((r) => r.step <= step);
    if (kept.length !== records.length) await writeTextAtomic(this.file, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
    return records.length - kept.length;
  }
}
