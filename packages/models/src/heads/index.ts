/** Heads: GlobalPointer / Efficient GlobalPointer with their losses and decoding; sentence pooling. */
export { GlobalPointer, EfficientGlobalPointer, globalPointerLoss, sparseGlobalPointerLoss, type GlobalPointerOptions } from './global_pointer.js';
export { decodeSpans, spansToEntities, recognize, type TokenSpan, type DecodedEntity, type DecodeOptions } from './decode.js';
export { pool, maskedMean, type PoolingMode } from './pooling.js';
