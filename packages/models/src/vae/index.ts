/** The vMF-VAE and its Gaussian baseline (ALGORITHMS.md §5.3), and image grids of their outputs. */
export { VaeModel, bceFromLogits, l2Normalize, type LatentKind, type VaeConfig, type VaeOutput } from './model.js';
export { imageGrid, type GrayImage } from './images.js';
