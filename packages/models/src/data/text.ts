/**
 * Plain text corpora, split into documents either one per line (`split: 'line'`, the default) or as
 * paragraphs separated by blank lines (`split: 'paragraph'`, lines of a paragraph joined by '\n').
 * Blank (whitespace-only) lines are never documents. Only a line that is not UTF-8 (or too long)
 * is malformed. And the lines of a stream read once (standard input), decoded the same way.
 */
import { ArgumentError } from '@kexue/core-cuda';

import { DataFormatError } from './errors.js';
import { BadLine, splitLineBatches, type LineReaderOptions } from './lines.js';
import { isBlank, perLine, RecordStream, type LineParser, type ReadOptions } from './stream.js';

export interface TextDocument {
  text: string;
  /** 1-based line where the document starts. */
  line: number;
}

export interface TextReadOptions extends ReadOptions {
  split?: 'line' | 'paragraph';
}

function paragraphs(): LineParser<TextDocument> {
  let lines: string[] = [];
  let start = 0;
  let skipping = false;
  const flush = (): TextDocument | undefined => {
    const doc = !skipping && lines.length > 0 ? { text: lines.join('\n'), line: start } : undefined;
    lines = [];
    skipping = false;
    return doc;
  };
  return {
    line(text, no) {
      if (isBlank(text)) return flush();
      if (!skipping) {
        if (lines.length === 0) start = no;
        lines.push(text);
      }
      return undefined;
    },
    end: flush,
    discard() {
      lines = [];
      skipping = true;
    },
  };
}

/** Streams the documents of a plain text file. */
export function readTextCorpus(file: string, options: TextReadOptions = {}): RecordStream<TextDocument> {
  const split = options.split ?? 'line';
  if (split !== 'line' && split !== 'paragraph') {
    throw new ArgumentError(`readTextCorpus: split must be 'line' or 'paragraph', got ${String(split)}`);
  }
  const make = split === 'line' ? () => perLine((text, no) => ({ text, line: no })) : paragraphs;
  return new RecordStream(file, make, options);
}

/**
 * The lines of a stream of bytes read once (standard input), decoded as the readers decode a
 * file: UTF-8, a byte-order mark and the '\r' of each '\r\n' removed. A line that is not valid
 * UTF-8 (or is too long) is a DataFormatError (E_FORMAT) `NAME:LINE: reason`.
 */
export async function readStreamLines(chunks: AsyncIterable<Uint8Array>, name: string, options: LineReaderOptions = {}): Promise<string[]> {
  const out: string[] = [];
  for await (const { lines, first } of splitLineBatches(chunks, options)) {
    lines.forEach((line, i) => {
      if (line instanceof BadLine) throw new DataFormatError(name, first + i, line.reason);
      out.push(line);
    });
  }
  return out;
}
