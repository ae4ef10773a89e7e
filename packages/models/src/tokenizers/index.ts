/** Tokenizers: BERT WordPiece and the T5 PEGASUS jieba-first tokenizer, with offsets. */
export { BertTokenizer, type BertTokenizerOptions } from './bert.js';
export { T5PegasusTokenizer, defaultSegmenter, type T5PegasusTokenizerOptions, type Segmenter } from './t5_pegasus.js';
export { WordPieceTokenizerBase } from './base.js';
export { Vocab, REQUIRED_SPECIALS } from './vocab.js';
export type { Encoding, EncodeOptions, EncodeBatchOptions, Offset, TruncationStrategy } from './encoding.js';
export { decodeTokens } from './decode.js';
export { BUNDLED_VOCABS } from './bundled.js';
