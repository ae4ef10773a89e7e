/**
 * Plain text corpora, split into documents either one per line (`split: 'line'`, the default) or as
 * paragraphs separated by blank lines (`split: 'paragraph'`, lines of a paragraph joined by '\n').
 * Blank (whitespace-only) lines are never documents. Only a line that is not UTF-8 (or too long)
 * is malformed.
 */
import { ArgumentError } from '@kexue/core-cuda';

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
