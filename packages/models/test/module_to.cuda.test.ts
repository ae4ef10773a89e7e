/**
 * Module.to(device): moving a model's parameters in place. Everywhere: the CPU→CPU call (a no-op that
 * keeps the very tensors) and the E_NO_CUDA error for 'cuda' on a machine without a GPU (the module
 * untouched). Where a GPU answers (the GPU check runs every *.cuda.test.ts): the move to 'cuda' and
 * back, the old tensors disposed, the values exact, a training forward on the device, and CPU
 * weights loaded into a model already on the device.
 */
import { describe, expect, it } from 'vitest';

import * as kx from '@kexue/core-cuda';
import { BertForMaskedLM } from '@kexue/models';

import { expectCode } from '../../core-cuda/test/helpers.js';

const gpu = kx.cuda.isAvailable();

/** A tiny MLM model (its decoder tied to the word embeddings, so the tie must survive a move). */
function tinyMlm(): BertForMaskedLM {
  return new BertForMaskedLM({ kind: 'bert', vocabSize: 40, hiddenSize: 16, numLayers: 2, numHeads: 2, intermediateSize: 32, maxPositions: 16 }, { seed: 3 });
}

/** Every parameter's values, read on the host. */
function values(params: Record<string, kx.Tensor>): Record<string, number[]> {
  return Object.fromEntries(
    Object.entries(params).map(([n, t]) => {
      if (t.device === 'cpu') return [n, Array.from(t.toFloat32Array())];
      const host = t.to('cpu');
      const out = Array.from(host.toFloat32Array());
      host.dispose();
      return [n, out];
    }),
  );
}

describe('Module.to', () => {
  it("to('cpu') on a CPU model returns the module and keeps the same, live tensors", () => {
    const model = tinyMlm();
    const before = model.namedParameters();
    const snapshot = values(before);
    expect(model.to('cpu')).toBe(model);
    const after = model.namedParameters();
    expect(Object.keys(after)).toEqual(Object.keys(before));
    for (const [name, t] of Object.entries(after)) {
      expect(t).toBe(before[name]);
      expect(t.device).toBe('cpu');
    }
    expect(values(after)).toEqual(snapshot);
    const ids = kx.tensor(new Int32Array([1, 2, 3, 4, 5, 6]), [2, 3], { dtype: 'int32' });
    kx.tidy(() => {
      expect(model.forward(ids).logits.shape).toEqual([2, 3, 40]);
    });
    ids.dispose();
    model.dispose();
  });

  it.skipIf(gpu)("to('cuda') without a GPU throws E_NO_CUDA and leaves every parameter where it was", () => {
    const model = tinyMlm();
    const before = model.namedParameters();
    const snapshot = values(before);
    const live = kx.memory().tensors;
    expectCode(() => model.to('cuda'), 'E_NO_CUDA');
    expectCode(() => model.to('cuda:1'), 'E_NO_CUDA');
    expect(kx.memory().tensors).toBe(live);
    for (const [name, t] of Object.entries(model.namedParameters())) expect(t).toBe(before[name]);
    expect(values(model.namedParameters())).toEqual(snapshot);
    model.dispose();
  });

  it('rejects a device name it does not know, before anything moves', () => {
    const model = tinyMlm();
    const before = model.namedParameters();
    expectCode(() => model.to('gpu'), 'E_ARG');
    for (const [name, t] of Object.entries(model.namedParameters())) expect(t).toBe(before[name]);
    model.dispose();
  });

  it.runIf(gpu)("to('cuda') moves every parameter, disposes the old ones, keeps the values; a training step runs there; to('cpu') brings it back", () => {
    const model = tinyMlm().train();
    const before = model.namedParameters();
    const snapshot = values(before);
    const live = kx.memory().tensors;
    expect(model.to('cuda')).toBe(model);
    const onGpu = model.namedParameters();
    for (const [name, t] of Object.entries(onGpu)) {
      expect(t.device).toBe('cuda:0');
      expectCode(() => before[name]!.dataSync(), 'E_DISPOSED');
    }
    expect(kx.memory().tensors).toBe(live);
    expect(values(onGpu)).toEqual(snapshot);
    // a second call is a no-op ('cuda' and 'cuda:0' name the same device)
    model.to('cuda:0');
    for (const [name, t] of Object.entries(model.namedParameters())) expect(t).toBe(onGpu[name]);

    const ids = kx.tensor(new Int32Array([1, 2, 3, 4, 5, 6]), [2, 3], { dtype: 'int32', device: 'cuda' });
    const types = kx.zeros([2, 3], { dtype: 'int32', device: 'cuda' });
    const labels = kx.tensor(new Int32Array([7, 8, 9, 10, 11, 12]), [6], { dtype: 'int32', device: 'cuda' });
    const { value, grads } = kx.valueAndGrad(
      () => kx.crossEntropy(kx.reshape(model.forward(ids, { tokenTypeIds: types }).logits, [6, 40]), labels),
      onGpu,
    );
    expect(Number.isFinite(value.item())).toBe(true);
    for (const [name, g] of Object.entries(grads)) expect(g.device, name).toBe('cuda:0');
    kx.dispose([value, grads, ids, types, labels]);

    model.to('cpu');
    for (const t of Object.values(model.namedParameters())) expect(t.device).toBe('cpu');
    expect(values(model.namedParameters())).toEqual(snapshot);
    model.dispose();
  });

  it.runIf(gpu)('loadStateDict puts CPU weights on the device of a model already moved there, cast to its dtype', () => {
    const source = tinyMlm();
    const weights = source.stateDict();
    const want = values(source.namedParameters());
    const model = new BertForMaskedLM(
      { kind: 'bert', vocabSize: 40, hiddenSize: 16, numLayers: 2, numHeads: 2, intermediateSize: 32, maxPositions: 16 },
      { seed: 9 },
    ).to('cuda');
    model.loadStateDict(weights);
    for (const [name, t] of Object.entries(model.namedParameters())) expect(t.device, name).toBe('cuda:0');
    expect(values(model.namedParameters())).toEqual(want);
    for (const t of Object.values(weights)) expect(t.device).toBe('cpu'); // the caller's stay where they were
    model.dispose();
    source.dispose();
  });
});
