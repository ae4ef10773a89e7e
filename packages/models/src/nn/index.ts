/** The nn layer kit: Module, initialisers, layers, attention, feed-forward, RoPE. */
export { Module, ModuleList, loadModule, describeProblems, type LoadOptions, type LoadReport, type ModuleLoadOptions } from './module.js';
export { InitRng } from './random.js';
export { truncatedNormal, lecunNormal, glorotUniform, constant, zerosInit, onesInit, fans, type Initializer } from './init.js';
export { Linear, Embedding, LayerNorm, RMSNorm, Dropout, type LinearOptions } from './layers.js';
export { activation, type ActivationName } from './activations.js';
export { MultiHeadAttention, type MultiHeadAttentionOptions, type AttentionCallOptions } from './attention.js';
export { FeedForward, type FeedForwardOptions } from './feed_forward.js';
export { applyRope, convertRopeCheckpoint, type LayerRopeOptions, type RopeConversionOptions } from './rope.js';
export { eluPlusOne, linearAttention, type LinearAttentionOptions } from './linear_attention.js';
export { WorkerModule, type ModuleFactory } from './worker_module.js';
