/**
 * Summarization TSV, two columns a line, in the order of each dataset:
 * - 'csl': `title\tabstract` (CSL title generation: the abstract is the source);
 * - 'lcsts': `summary\ttext` (LCSTS: the text is the source).
 * Fields are kept verbatim; LCSTS has lines with doubled CSV quotes (`""""`), which stay as text.
 */
import { ArgumentError } from '@kexue/core-cuda';

import { perLine, RecordStream, type ReadOptions } from './stream.js';
import { splitColumns } from './tsv.js';

export type SummarizationFormat = 'csl' | 'lcsts';

export interface SummarizationPair {
  /** The text to summarize. */
  source: string;
  /** The reference summary (title or headline). */
  target: string;
  /** 1-based line in its file. */
  line: number;
}

export interface SummarizationReadOptions extends ReadOptions {
  format: SummarizationFormat;
}

const LAYOUT: Record<SummarizationFormat, { columns: readonly string[]; target: number }> = {
  csl: { columns: ['title', 'abstract'], target: 0 },
  lcsts: { columns: ['summary', 'text'], target: 0 },
};

/** Streams a summarization TSV file. Blank lines are ignored. */
export function readSummarization(file: string, options: SummarizationReadOptions): RecordStream<SummarizationPair> {
  const layout = LAYOUT[options?.format];
  if (!layout || !Object.hasOwn(LAYOUT, options.format)) {
    throw new ArgumentError(`readSummarization: format must be 'csl' or 'lcsts', got ${String(options?.format)}`);
  }
  const parse = (text: string, no: number): SummarizationPair => {
    const fields = splitColumns(text, no, layout.columns);
    return { source: fields[1 - layout.target]!, target: fields[layout.target]!, line: no };
  };
  return new RecordStream(file, () => perLine(parse), options);
}
