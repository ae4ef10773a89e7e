// The public API of @kexue/models.
export * from './tokenizers/index.js';
export * from './data/index.js';
export * from './nn/index.js';
export * from './bert/index.js';
export * from './t5/index.js';
export * from './generate/index.js';
export * from './heads/index.js';
export * from './metrics/index.js';
export * from './checkpoint/index.js';
export * from './train/index.js';
export * from './tasks/index.js';
export * from './sentence/index.js';
export * from './vae/index.js';
export { editDistance, suggest } from './suggest.js';
