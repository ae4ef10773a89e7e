/** Metrics: entity-level P/R/F1, GlobalPointer's training F1, and the summarization scores (ROUGE, BLEU). */
export { EntityF1, globalPointerF1, type Span, type PRF, type TypePRF } from './entity_f1.js';
export { SummaryMetrics, summaryScores, leadBaseline, lcsLength, scoringChars, type SummaryScores } from './summary.js';
