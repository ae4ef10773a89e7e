/** Helpers for the models tests: fixtures under test/fixtures (made by tools/golden/fx_models.py). */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as kx from '@kexue/core-cuda';

const here = path.dirname(fileURLToPath(import.meta.url));

export interface ModelFixture {
  /** Weights under their HF names. */
  weights: Record<string, kx.Tensor>;
  inputs: Record<string, kx.Tensor>;
  outputs: Record<string, kx.Tensor>;
  grads: Record<string, kx.Tensor>;
  meta: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  dispose(): void;
}

/** Loads test/fixtures/<name>.safetensors and splits it by role; tensors are kept. */
export function loadModelFixture(name: string): ModelFixture {
  const file = kx.io.readSafetensors(path.join(here, 'fixtures', `${name}.safetensors`));
  const fx: ModelFixture = { weights: {}, inputs: {}, outputs: {}, grads: {}, meta: JSON.parse(file.metadata.cases!)[0], dispose: () => kx.dispose(file.tensors) };
  for (const [k, t] of Object.entries(file.tensors)) {
    kx.keep(t);
    if (k.startsWith('input.')) fx.inputs[k.slice(6)] = t;
    else if (k.startsWith('out.')) fx.outputs[k.slice(4)] = t;
    else if (k.startsWith('grad.')) fx.grads[k.slice(5)] = t;
    else fx.weights[k] = t;
  }
  return fx;
}

/** max |a − e| / max |e| (the error relative to the reference's scale); non-finite entries must match. */
export function relError(actual: kx.Tensor, expected: kx.Tensor): number {
  const a = actual.toFloat32Array();
  const e = expected.toFloat32Array();
  if (a.length !== e.length) return Infinity;
  let err = 0;
  let scale = 0;
  for (let i = 0; i < e.length; i++) {
    if (!Number.isFinite(e[i]!) || !Number.isFinite(a[i]!)) {
      if (a[i] !== e[i]) return Infinity;
      continue;
    }
    err = Math.max(err, Math.abs(a[i]! - e[i]!));
    scale = Math.max(scale, Math.abs(e[i]!));
  }
  return scale === 0 ? err : err / scale;
}
