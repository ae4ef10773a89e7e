/** Sentence vectors (ALGORITHMS.md §3): an encoder with §3.3's poolings, BERT-whitening, Spearman's rho and the STS evaluation; random projections and the Johnson–Lindenstrauss bounds (§7). */
export { POOLINGS, SentenceEncoder, type SentenceEncoderOptions, type SentenceModelOptions } from './encoder.js';
export { Whitening, numericalRank, type WhiteningOptions } from './whitening.js';
export { averageRanks, pearson, spearman } from './spearman.js';
export { cosinePairs } from './cosine.js';
export { npyBytes, readVectors, writeVectors } from './vectors.js';
export { DEFAULT_STS_DATA, STS_SETS, defaultK, evaluateSts, formatStsTable, type StsOptions, type StsResult, type StsRow, type StsSet } from './sts.js';
export { parseWhiten, stsEvaluation } from './sts_command.js';
export {
  EMBEDDING_DIMENSION_FACTOR,
  embeddingDimensionBound,
  jlDimension,
  jlDimensionBound,
  jlExistenceDimensionBound,
  jlFailureBound,
  jlInnerProductFailureBound,
  normDeviationBound,
  orthogonalityBound,
} from './jl_bounds.js';
export { PROJECTION_KINDS, PROJECTION_STREAM, RandomProjection, type ProjectionKind, type RandomProjectionOptions } from './jl_projections.js';
export { NEAR_DUPLICATE, measureAngles, measureDistortion, type AngleEstimate, type DistanceDistortion, type DistortionOptions } from './jl_distortion.js';
export { randomizedSvd, type RandomizedSvdOptions } from './randomized_svd.js';
export { DEFAULT_MAX_PAIRS, SAMPLE_STREAM, formatJlReport, runJl, type JlBound, type JlOptions, type JlReport } from './jl_report.js';
