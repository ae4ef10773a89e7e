/** Dataset readers (streaming, typed records, errors with file and line), batching and span mapping. */
export { DataFormatError } from './errors.js';
export { BadLine, readLineBatches, splitLineBatches, type LineBatch, type LineReaderOptions, type RawLine } from './lines.js';
export { RecordStream, type LineParser, type ReadOptions, type ReadStats } from './stream.js';
export { codePointIndex, sortEntities, type Entity, type NerRecord } from './entities.js';
export { parseCluenerLine, readCluener } from './cluener.js';
export { decodeTags, isValidTag, type DecodedTags, type TagProblem, type TagScheme, type TagSpan } from './tagging.js';
export {
  readResume,
  readTaggedChars,
  readWeibo,
  splitPositionSuffix,
  type TaggedFormat,
  type TaggedReadOptions,
  type TaggedRecord,
} from './tagged.js';
export { PAIR_MAX_LABEL, readSentencePairs, type PairReadOptions, type SentencePair } from './pairs.js';
export {
  readSummarization,
  type SummarizationFormat,
  type SummarizationPair,
  type SummarizationReadOptions,
} from './summarization.js';
export { groupPieces, pseudoSummary, pseudoSummaryPairs, textSegmentate, type GroupOptions, type PseudoSummary, type PseudoSummaryOptions, type PseudoSummaryPair, type PseudoSummaryPairsOptions } from './pegasus.js';
export { readStreamLines, readTextCorpus, type TextDocument, type TextReadOptions } from './text.js';
export { BatchLoader, Dataset, SHUFFLE_STREAM, shuffledOrder, type Batch, type LoaderOptions, type Position } from './dataset.js';
export { entitiesToTokens, tokensToEntities, TokenSpanMapper, type SpanMapperOptions, type TokenEntity, type TokenOffset } from './spans.js';
export { FASHION_MNIST_DIR, parseIdx, readIdx, readImageSplit, type ImageSet } from './idx.js';
