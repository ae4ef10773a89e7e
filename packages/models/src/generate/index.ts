/** Sequence generation (beam search, greedy, sampling, streaming) over incremental decoding states. */
export { generate, generateStream, type GenerateOptions, type Generated } from './generate.js';
export { type DecodingState, type Seq2SeqGenerator } from './decoder.js';
