/** Sentence vectors (ALGORITHMS.md §3): an encoder with §3.3's poolings, BERT-whitening, Spearman's rho and the STS evaluation. */
export { POOLINGS, SentenceEncoder, type SentenceEncoderOptions, type SentenceModelOptions } from './encoder.js';
export { Whitening, numericalRank, type WhiteningOptions } from './whitening.js';
export { averageRanks, pearson, spearman } from './spearman.js';
export { cosinePairs } from './cosine.js';
export { npyBytes, writeVectors } from './vectors.js';
export { DEFAULT_STS_DATA, STS_SETS, defaultK, evaluateSts, formatStsTable, type StsOptions, type StsResult, type StsRow, type StsSet } from './sts.js';
export { parseWhiten, stsEvaluation } from './sts_command.js';
