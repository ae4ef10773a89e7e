/**
 * CLUENER2020 JSON lines: `{"text": "...", "label": {"type": {"surface": [[start, end], ...]}}}`,
 * one object a line, offsets in characters (code points) with `end` inclusive. Records come out
 * with `end` exclusive, in string indices (see Entity). A record is malformed when its JSON does
 * not parse, a field has the wrong type, a span is outside the text or reversed, or the text at a
 * span differs from its surface. A missing or null `label` (the unlabelled test split) gives no
 * entities.
 */
import { Malformed } from './errors.js';
import { codePointIndex, sortEntities, type Entity, type NerRecord } from './entities.js';
import { perLine, RecordStream, type ReadOptions } from './stream.js';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Parses one CLUENER line (1-based line number `no`); throws Malformed. */
export function parseCluenerLine(line: string, no: number): NerRecord {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    throw new Malformed(no, `invalid JSON: ${(err as Error).message}`);
  }
  if (!isObject(value) || typeof value.text !== 'string') throw new Malformed(no, 'expected an object with a string "text"');
  const text = value.text;
  if (text.length === 0) throw new Malformed(no, '"text" is empty');
  const label = value.label;
  const entities: Entity[] = [];
  if (label === undefined || label === null) return { text, entities, line: no };
  if (!isObject(label)) throw new Malformed(no, '"label" must be an object {type: {surface: [[start, end], ...]}}');
  const index = codePointIndex(text);
  const length = index ? index.length - 1 : text.length;
  for (const [type, surfaces] of Object.entries(label)) {
    if (!isObject(surfaces)) throw new Malformed(no, `label "${type}" must be an object {surface: [[start, end], ...]}`);
    for (const [surface, spans] of Object.entries(surfaces)) {
      if (!Array.isArray(spans)) throw new Malformed(no, `label "${type}" / "${surface}": spans must be an array of [start, end]`);
      for (const span of spans) {
        if (!Array.isArray(span) || span.length !== 2 || !span.every((x) => Number.isSafeInteger(x))) {
          throw new Malformed(no, `label "${type}" / "${surface}": span ${JSON.stringify(span)} is not [start, end] with integers`);
        }
        const [s, e] = span as [number, number];
        if (s < 0 || e < s || e >= length) {
          throw new Malformed(no, `label "${type}" / "${surface}": span [${s}, ${e}] is outside the text (${length} characters) or reversed`);
        }
        const start = index ? index[s]! : s;
        const end = index ? index[e + 1]! : e + 1;
        const got = text.slice(start, end);
        if (got !== surface) {
          throw new Malformed(no, `label "${type}": span [${s}, ${e}] is "${got}" in the text, not "${surface}"`);
        }
        entities.push({ type, start, end, text: surface });
      }
    }
  }
  return { text, entities: sortEntities(entities), line: no };
}

/** Streams a CLUENER JSON-lines file. Blank lines are ignored. */
export function readCluener(file: string, options: ReadOptions = {}): RecordStream<NerRecord> {
  return new RecordStream(file, () => perLine(parseCluenerLine), options);
}
