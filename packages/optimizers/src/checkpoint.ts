/** Optimizer state in safetensors files: the state tensors, and the counters as JSON metadata. */
import * as kx from '@kexue/core-cuda';
import { FormatError } from '@kexue/core-cuda';

import type { Optimizer, OptimizerMeta } from './optimizer.js';

const META_KEY = 'kexue.optimizer';

/** Writes the optimizer's state to a safetensors file (atomically, as saveSafetensors does). */
export async function saveOptimizerState(file: string, optimizer: Optimizer): Promise<void> {
  const { tensors, meta } = optimizer.state();
  try {
    await kx.io.saveSafetensors(file, tensors, { [META_KEY]: JSON.stringify(meta) });
  } finally {
    kx.dispose(tensors);
  }
}

/**
 * Loads a state written by saveOptimizerState into the optimizer, its tensors on `options.device`
 * (default the CPU; give the parameters' device, since a step checks that they match). E_FORMAT
 * when the file has no optimizer metadata; otherwise as Optimizer.loadState (E_ARG another
 * optimizer, E_SHAPE shapes).
 */
export function loadOptimizerState(file: string, optimizer: Optimizer, options: kx.io.LoadOptions = {}): void {
  const loaded = kx.io.readSafetensors(file, options);
  try {
    const raw = loaded.metadata[META_KEY];
    if (raw === undefined) throw new FormatError(`${file}: no '${META_KEY}' metadata (not an optimizer state)`);
    let meta: OptimizerMeta;
    try {
      meta = JSON.parse(raw) as OptimizerMeta;
    } catch {
      throw new FormatError(`${file}: '${META_KEY}' metadata is not JSON`);
    }
    optimizer.loadState({ tensors: loaded.tensors, meta });
  } finally {
    kx.dispose(loaded.tensors);
  }
}
