/**
 * Character-per-line NER files: one `char TAG` line per character, a blank line between sentences.
 * - Resume (BMES): `char TAG` separated by a space.
 * - Weibo (BIO): `char<position>\tTAG`, where <position> (one or more ASCII digits) is the
 *   character's index inside its jieba word; it is stripped (see splitPositionSuffix).
 * The separator is the last space or tab of the line. A line without one, an empty character or an
 * unknown tag makes the sentence malformed; an invalid tag sequence is repaired by default (see
 * tagging.ts) and counted in `stats.repaired`, or malformed with `tagSequence: 'strict'`.
 */
import { Malformed } from './errors.js';
import type { Entity, NerRecord } from './entities.js';
import { isBlank, RecordStream, type LineParser, type ReadOptions, type ReadStats } from './stream.js';
import { decodeTags, isValidTag, type TagScheme } from './tagging.js';

/** A sentence of a character-per-line file. `chars[i]` has tag `tags[i]`; `text` is chars joined. */
export interface TaggedRecord extends NerRecord {
  chars: string[];
  tags: string[];
}

export interface TaggedReadOptions extends ReadOptions {
  /** Invalid tag sequences: 'repair' (default; counted in stats.repaired) or 'strict' (malformed). */
  tagSequence?: 'repair' | 'strict';
}

export interface TaggedFormat {
  scheme: TagScheme;
  /** Whether the character column ends with a position number to strip (Weibo). */
  positionSuffix: boolean;
}

const isDigit = (c: number) => c >= 48 && c <= 57;

/**
 * Splits Weibo's `char<position>` field: the longest run of trailing ASCII digits is the position,
 * except that the first character always belongs to the char (so `310` is '3' at position 10).
 * Returns undefined when there is no position. The char is usually one character; it can be more
 * (the Weibo files hold damaged emoji written as two U+FFFD).
 */
export function splitPositionSuffix(field: string): { char: string; position: number } | undefined {
  let cut = field.length;
  while (cut > 0 && isDigit(field.charCodeAt(cut - 1))) cut--;
  if (cut === field.length) return undefined;
  if (cut === 0) {
    if (field.length < 2) return undefined;
    cut = 1;
  }
  return { char: field.slice(0, cut), position: Number(field.slice(cut)) };
}

class TaggedParser implements LineParser<TaggedRecord> {
  #chars: string[] = [];
  #tags: string[] = [];
  #start = 0;
  #skipping = false;

  constructor(
    private readonly format: TaggedFormat,
    private readonly strict: boolean,
    private readonly stats: ReadStats,
  ) {}

  line(text: string, no: number): TaggedRecord | undefined {
    if (isBlank(text)) return this.end();
    if (this.#skipping) return undefined;
    if (this.#chars.length === 0) this.#start = no;
    const sep = Math.max(text.lastIndexOf(' '), text.lastIndexOf('\t'));
    if (sep < 0) this.#fail(no, `expected "char${this.format.positionSuffix ? '<position>' : ''} TAG", got "${text}"`);
    const tag = text.slice(sep + 1);
    let char = text.slice(0, sep);
    if (!isValidTag(tag, this.format.scheme)) this.#fail(no, `unknown ${this.format.scheme.toUpperCase()} tag "${tag}"`);
    if (this.format.positionSuffix) {
      const split = splitPositionSuffix(char);
      if (!split) this.#fail(no, `"${char}" lacks the position digits after the character`);
      char = split!.char;
    }
    if (char.length === 0) this.#fail(no, 'empty character');
    this.#chars.push(char);
    this.#tags.push(tag);
    return undefined;
  }

  #fail(no: number, reason: string): never {
    this.discard();
    throw new Malformed(no, reason);
  }

  end(): TaggedRecord | undefined {
    const chars = this.#chars;
    const tags = this.#tags;
    const skipped = this.#skipping;
    this.#chars = [];
    this.#tags = [];
    this.#skipping = false;
    if (skipped || chars.length === 0) return undefined;
    const decoded = decodeTags(tags, this.format.scheme);
    if (decoded.problem) {
      if (this.strict) throw new Malformed(this.#start + decoded.problem.index, `invalid tag sequence: ${decoded.problem.reason}`);
      this.stats.repaired++;
    }
    const offsets = new Array<number>(chars.length + 1);
    offsets[0] = 0;
    for (let i = 0; i < chars.length; i++) offsets[i + 1] = offsets[i]! + chars[i]!.length;
    const text = chars.join('');
    const entities: Entity[] = decoded.spans.map((s) => {
      const start = offsets[s.start]!;
      const end = offsets[s.end]!;
      return { type: s.type, start, end, text: text.slice(start, end) };
    });
    return { text, entities, line: this.#start, chars, tags };
  }

  /** Drops the sentence in progress and ignores its remaining lines (up to the next blank line). */
  discard(): void {
    this.#chars = [];
    this.#tags = [];
    this.#skipping = true;
  }
}

/** Streams a character-per-line NER file of the given format. */
export function readTaggedChars(file: string, format: TaggedFormat, options: TaggedReadOptions = {}): RecordStream<TaggedRecord> {
  const strict = options.tagSequence === 'strict';
  return new RecordStream(file, (stats) => new TaggedParser(format, strict, stats), options);
}

/** Streams a Resume NER file (`char TAG`, BMES). */
export function readResume(file: string, options: TaggedReadOptions = {}): RecordStream<TaggedRecord> {
  return readTaggedChars(file, { scheme: 'bmes', positionSuffix: false }, options);
}

/** Streams a Weibo NER file (`char<position>\tTAG`, BIO). */
export function readWeibo(file: string, options: TaggedReadOptions = {}): RecordStream<TaggedRecord> {
  return readTaggedChars(file, { scheme: 'bio', positionSuffix: true }, options);
}
