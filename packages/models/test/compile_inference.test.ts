/**
 * kx.compile of an eval-mode forward (inference in one addon call): the Linear layers' packed
 * weights are made once, outside the program, so a replay multiplies by them instead of packing
 * again; a replay gives the eager forward's bits; and once a weight changes in place the program
 * is traced again (its packed copies are stale), never replayed with the old weights.
 */
import * as kx from '@kexue/core-cuda';
import { BertModel, bertConfig } from '@kexue/models';
import { SGD } from '@kexue/optimizers';
import { describe, expect, it } from 'vitest';

const config = bertConfig({ kind: 'bert', vocabSize: 50, hiddenSize: 32, numLayers: 2, numHeads: 4, intermediateSize: 64, maxPositions: 16 });

function inputs(batch: number, seq: number) {
  const ids = kx.tensor(Int32Array.from({ length: batch * seq }, (_, i) => (i * 7 + 3) % config.vocabSize), [batch, seq], { dtype: 'int32' });
  const mask = kx.tensor(Uint8Array.from({ length: batch * seq }, (_, i) => (i % seq < seq - 1 || i < seq ? 1 : 0)), [batch, seq], { dtype: 'uint8' });
  return { ids, mask };
}

const values = (t: kx.Tensor) => Array.from(t.toFloat32Array());

/** A BERT in eval mode, its forward to the last hidden state, and that forward compiled. */
function encoder(seed: number) {
  const model = new BertModel(config, { seed });
  model.eval();
  const forward = (ids: kx.Tensor, mask: kx.Tensor) => model.forward(ids, { attentionMask: mask, hiddenStates: false }).lastHiddenState;
  return { model, forward, compiled: kx.compile(forward) };
}

describe('kx.compile of an eval forward', () => {
  it('packs each weight once outside the program and replays the eager bits', () => {
    const { model, forward, compiled } = encoder(5);
    const { ids, mask } = inputs(2, 7);
    // compiled first: the trace is the first eval forward, so the packing happens inside it
    const traced = kx.tidy(() => values(compiled(ids, mask)));
    const plan = compiled.plan(ids, mask)!;
    expect(plan.nodes.filter((n) => n.op === 'matmul_packed').length).toBe(2 * 6);
    expect(plan.nodes.some((n) => n.op === 'matmul_pack')).toBe(false);
    const replayed = kx.tidy(() => values(compiled(ids, mask)));
    const eager = kx.tidy(() => values(forward(ids, mask)));
    expect(compiled.stats).toEqual({ traces: 1, replays: 1 });
    expect(replayed).toEqual(eager);
    expect(traced).toEqual(eager);
    model.dispose();
  });

  it('traces again after a weight changes in place instead of replaying stale packed copies', () => {
    const { model, forward, compiled } = encoder(6);
    const { ids, mask } = inputs(1, 5);
    const before = kx.tidy(() => values(compiled(ids, mask)));
    kx.tidy(() => void compiled(ids, mask));
    // one SGD step on every parameter (in place: the packed copies are now stale)
    const params = model.namedParameters();
    const grads = Object.fromEntries(Object.entries(params).map(([k, p]) => [k, kx.ones(p.shape)]));
    new SGD({ learningRate: 0.01 }).step(params, grads);
    for (const g of Object.values(grads)) g.dispose();
    const after = kx.tidy(() => values(compiled(ids, mask)));
    const eager = kx.tidy(() => values(forward(ids, mask)));
    expect(compiled.stats).toEqual({ traces: 2, replays: 1 });
    expect(after).toEqual(eager);
    expect(after).not.toEqual(before);
    kx.tidy(() => void compiled(ids, mask));
    expect(compiled.stats).toEqual({ traces: 2, replays: 2 });
    model.dispose();
  });

  it('frees a dropped program with its packed copies at once, not at garbage collection', () => {
    const storages = () => kx.memory().storages;
    const start = storages();
    const { model, compiled } = encoder(7);
    const { ids, mask } = inputs(1, 5);
    const base = storages();
    kx.tidy(() => void compiled(ids, mask));
    const traced = storages(); // the packed copies (held by the layers and the program) and the program's constants
    expect(traced).toBeGreaterThan(base + 12 - 1);
    const grads = Object.fromEntries(Object.entries(model.namedParameters()).map(([k, p]) => [k, kx.ones(p.shape)]));
    new SGD({ learningRate: 0.01 }).step(model.namedParameters(), grads);
    kx.dispose(Object.values(grads));
    kx.tidy(() => void compiled(ids, mask)); // traced again: new copies, the old program and copies freed
    expect(storages()).toBe(traced);
    compiled.clear();
    model.train(); // drops the layers' copies
    expect(storages()).toBe(base);
    model.dispose();
    kx.dispose([ids, mask]);
    expect(storages()).toBe(start);
  });
});
