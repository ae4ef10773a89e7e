/**
 * The weights of a Hugging Face checkpoint: the file a checkpoint directory keeps them in, and
 * reading that file by its format (safetensors, or a PyTorch zip checkpoint).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';

import { KexueIOError, io, type Tensor } from '@kexue/core-cuda';

/** The weights files a checkpoint directory may hold, in the order they are looked for. */
export const WEIGHTS_FILES = ['model.safetensors', 'pytorch_model.bin'] as const;

/** The weights file of a checkpoint directory: model.safetensors, else pytorch_model.bin (E_IO naming both when neither is there). */
export function findWeightsFile(dir: string): string {
  for (const name of WEIGHTS_FILES) {
    const file = path.join(dir, name);
    if (existsSync(file)) return file;
  }
  throw new KexueIOError(`${dir} holds no weights: neither ${WEIGHTS_FILES.join(' nor ')}`);
}

/**
 * The tensors of a weights file, made on `device` (default the CPU): a `.safetensors` file by the
 * safetensors reader, any other (pytorch_model.bin, .pt) as a PyTorch zip checkpoint. The caller
 * owns them.
 */
export function readWeightsFile(file: string, device = 'cpu'): Record<string, Tensor> {
  return file.endsWith('.safetensors') ? io.loadSafetensors(file, { device }) : io.loadTorch(file, { device });
}

/**
 * The tensors under the names of today's Hugging Face models: checkpoints converted from
 * TensorFlow early on (bert-base-chinese's pytorch_model.bin among them) call LayerNorm's scale
 * and shift `LayerNorm.gamma` and `LayerNorm.beta`, which transformers renames to `.weight` and
 * `.bias` as it loads them; so does this (other names are kept).
 */
export function modernNormNames(weights: Record<string, Tensor>): Record<string, Tensor> {
  const renamed: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(weights)) renamed[name.replace(/(LayerNorm)\.gamma$/, '$1.weight').replace(/(LayerNorm)\.beta$/, '$1.bias')] = t;
  return renamed;
}
