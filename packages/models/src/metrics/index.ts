/** Metrics: entity-level P/R/F1 and GlobalPointer's training F1. */
export { EntityF1, globalPointerF1, type Span, type PRF, type TypePRF } from './entity_f1.js';
