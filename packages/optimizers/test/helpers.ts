/** Test helpers for @kexue/optimizers: its fixtures, plus core-cuda's comparison helpers. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as kx from '@kexue/core-cuda';

export { expectClose, expectCode, hostValues, maxRelError, randomTensor } from '../../core-cuda/test/helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));

export interface OptimCase {
  name: string;
  optimizer: 'tiger' | 'lion' | 'adamw' | 'sgd';
  options: Record<string, unknown>;
  steps: number;
  params: Record<string, number[]>;
  nonFinite?: [number, string][];
}

export interface OptimFixture {
  cases: OptimCase[];
  get(name: string): kx.Tensor;
  has(name: string): boolean;
  dispose(): void;
}

/** Loads test/fixtures/<name>.safetensors (made by tools/golden/fx_optimizers.py). */
export function loadFixture(name: string): OptimFixture {
  const file = kx.io.readSafetensors(path.join(here, 'fixtures', `${name}.safetensors`));
  for (const t of Object.values(file.tensors)) kx.keep(t);
  return {
    cases: JSON.parse(file.metadata.cases ?? '[]') as OptimCase[],
    get(key) {
      const t = file.tensors[key];
      if (!t) throw new Error(`fixture ${name} has no tensor '${key}'`);
      return t;
    },
    has: (key) => key in file.tensors,
    dispose: () => kx.dispose(file.tensors),
  };
}

/** Row `i` of a stacked [steps, ...shape] float32 tensor, as its own tensor of `shape`. */
export function stepSlice(stacked: kx.Tensor, i: number): kx.Tensor {
  const shape = stacked.shape.slice(1);
  const n = shape.reduce((a, b) => a * b, 1);
  const all = stacked.toFloat32Array();
  return kx.tensor(all.slice(i * n, (i + 1) * n), shape);
}

/** An exact copy of a tensor (new storage). */
export function copy(t: kx.Tensor): kx.Tensor {
  return kx.tensor(t.dataSync(), t.shape, { dtype: t.dtype });
}
