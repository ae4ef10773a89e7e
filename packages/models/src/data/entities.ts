/** Entities: typed character spans of a text, shared by the NER readers. */

/**
 * A typed span of a record's text. Offsets are JavaScript string indices (UTF-16 code units;
 * one per character for CJK text), `start` inclusive and `end` exclusive, so that
 * `text.slice(start, end) === entity.text`.
 */
export interface Entity {
  type: string;
  start: number;
  end: number;
  text: string;
}

/** A NER record: a text and its entities, sorted by (start, end, type). */
export interface NerRecord {
  text: string;
  entities: Entity[];
  /** 1-based line where the record starts in its file. */
  line: number;
}

/** Sorts entities by start, then end, then type (in place) and returns them. */
export function sortEntities(entities: Entity[]): Entity[] {
  return entities.sort((x, y) => x.start - y.start || x.end - y.end || (x.type < y.type ? -1 : x.type > y.type ? 1 : 0));
}

/**
 * For text with characters outside the BMP, the UTF-16 index of each code point (and one past the
 * end); undefined when every character is one code unit, so code point = string index.
 */
export function codePointIndex(text: string): Int32Array | undefined {
  if (!/[\uD800-\uDFFF]/.test(text)) return undefined;
  const index: number[] = [];
  let i = 0;
  for (const ch of text) {
    index.push(i);
    i += ch.length;
  }
  index.push(i);
  return Int32Array.from(index);
}
