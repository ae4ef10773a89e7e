/**
 * Models built straight from checkpoints (loadModule, BertModel/BertForMaskedLM.fromPretrained):
 * the same bits as building with the initialiser and loading, no initialiser run, the file's
 * tensors taken as the parameters, the same typed errors; and the forward that runs each block in
 * its own scope gives the bits and gradients of the forward without scopes.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

import * as kx from '@kexue/core-cuda';
import { BertForMaskedLM, BertModel, InitRng, Linear, bertConfig, loadModule, truncatedNormal, type BertConfig, type Initializer } from '@kexue/models';
import { describe, expect, it } from 'vitest';

import { expectCode, useTempDir } from '../../core-cuda/test/helpers.js';

const tmp = useTempDir('kexue-inference-');

const small = (kind: BertConfig['kind'], extra: Partial<BertConfig> = {}) =>
  bertConfig({ kind, vocabSize: 40, hiddenSize: 16, numLayers: 2, numHeads: 2, intermediateSize: 32, maxPositions: 16, ...extra });

/** The raw bytes of a tensor, for bit-for-bit comparisons. */
const bytes = (t: kx.Tensor) => {
  const d = t.dataSync();
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
};

/** A Hugging Face checkpoint directory: config.json with HF's keys and model.safetensors holding `weights`. */
async function writeHfCheckpoint(name: string, c: BertConfig, weights: Record<string, kx.Tensor>): Promise<string> {
  const dir = path.join(tmp, name);
  mkdirSync(dir, { recursive: true });
  const json = {
    model_type: c.kind,
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    intermediate_size: c.intermediateSize,
    max_position_embeddings: c.maxPositions,
    embedding_size: c.embeddingSize,
  };
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(json));
  await kx.io.saveSafetensors(path.join(dir, 'model.safetensors'), weights);
  return dir;
}

/** ids int32 [2, 7] and a mask whose second row is padded after 4 tokens. */
function inputs(vocab: number): { ids: kx.Tensor; mask: kx.Tensor } {
  const ids = kx.tensor(Int32Array.from({ length: 14 }, (_, i) => (i * 7 + 3) % vocab), [2, 7], { dtype: 'int32' });
  const mask = kx.tensor(Uint8Array.from({ length: 14 }, (_, i) => (i < 11 ? 1 : 0)), [2, 7], { dtype: 'uint8' });
  return { ids, mask };
}

/** A BertModel built with its initialiser and loaded from `file` by loadStateDict: how checkpoints were loaded before fromPretrained. */
function initThenLoad(c: BertConfig, file: string): BertModel {
  const model = new BertModel(c, { seed: 0 }).eval();
  const weights = kx.io.loadSafetensors(file);
  model.loadStateDict(weights);
  kx.dispose(weights);
  return model;
}

describe('loadModule', () => {
  it('runs no initialiser, draws nothing from the InitRng, takes the tensors as the parameters and disposes the rest', () => {
    let calls = 0;
    const counting: Initializer = (shape, rng) => {
      calls += 1;
      return truncatedNormal(0.02)(shape, rng);
    };
    // the counter counts: building as usual runs the initialiser
    new Linear(4, 3, { rng: new InitRng(11), init: counting }).dispose();
    expect(calls).toBe(1);

    const rng = new InitRng(11);
    const weight = kx.tensor(Float32Array.from({ length: 12 }, (_, i) => i / 10), [3, 4]);
    const bias = kx.tensor([0.5, -1, 2], [3], { dtype: 'float16' });
    const extra = kx.zeros([2]);
    const lin = loadModule(() => new Linear(4, 3, { rng, init: counting }), { weight, bias, extra }, { partial: true });
    expect(calls).toBe(1);
    expect(rng.nextU32()).toBe(new InitRng(11).nextU32());
    expect(lin.weight).toBe(weight); // no copy
    const b = lin.namedParameters().bias!;
    expect(b.dtype).toBe('float32');
    expect(Array.from(b.toFloat32Array())).toEqual([0.5, -1, 2]);
    expect(bias.isDisposed).toBe(true);
    expect(extra.isDisposed).toBe(true);
    // (float32 sums: the product's order of additions is the kernel's, AVX2 and AVX-512 differ in the last bit)
    const y = Array.from(lin.forward(kx.ones([1, 4])).toFloat32Array());
    [0.6 + 0.5, 2.2 - 1, 3.8 + 2].forEach((v, i) => expect(y[i]).toBeCloseTo(v, 6));
    lin.dispose();
  });

  it('refuses a state dict that does not fit (E_FORMAT naming each problem) and frees every tensor it was given', () => {
    const before = kx.memory().tensors;
    const err = expectCode(
      () => loadModule(() => new Linear(4, 3, { rng: new InitRng(0) }), { weight: kx.zeros([4, 3]), other: kx.zeros([1]) }, { source: 'test weights' }),
      'E_FORMAT',
    );
    expect(err.message).toMatch(/^test weights does not fit this Linear:/);
    expect(err.message).toMatch(/missing: bias/);
    expect(err.message).toMatch(/unexpected: other/);
    expect(err.message).toMatch(/mis-shaped: weight \(expected \[3, 4\], got \[4, 3\]\)/);
    expect(kx.memory().tensors).toBe(before);
  });
});

describe('fromPretrained', () => {
  for (const [kind, extra] of [
    ['bert', {}],
    ['roformer', { embeddingSize: 8 }],
  ] as const) {
    it(`builds a ${kind} with the bits of the model built with its initialiser and loaded`, async () => {
      const c = small(kind, extra);
      const source = new BertModel(c, { seed: 7 });
      const dir = await writeHfCheckpoint(`${kind}-base`, c, source.stateDict());
      source.dispose();
      const reference = initThenLoad(c, path.join(dir, 'model.safetensors'));
      const loaded = BertModel.fromPretrained(dir);
      expect(loaded.training).toBe(false);
      expect(loaded.config).toEqual(reference.config);
      const want = reference.namedParameters();
      const got = loaded.namedParameters();
      expect(Object.keys(got)).toEqual(Object.keys(want));
      for (const [name, t] of Object.entries(want)) expect(bytes(got[name]!), name).toEqual(bytes(t));
      const { ids, mask } = inputs(c.vocabSize);
      kx.tidy(() => {
        const a = reference.forward(ids, { attentionMask: mask });
        const b = loaded.forward(ids, { attentionMask: mask });
        expect(bytes(b.lastHiddenState)).toEqual(bytes(a.lastHiddenState));
        if (a.pooled) expect(bytes(b.pooled!)).toEqual(bytes(a.pooled));
      });
      kx.dispose([ids, mask]);
      reference.dispose();
      loaded.dispose();
    });
  }

  it("reads an MLM checkpoint: BertForMaskedLM whole, BertModel from under 'bert.' (the head ignored)", async () => {
    const c = small('bert', { pooler: false });
    const mlm = new BertForMaskedLM(c, { seed: 5 }).eval();
    const table = mlm.encoder.embeddings.word_embeddings.weight;
    // as HF saves it: the decoder, tied to the word embeddings, written out too
    const dir = await writeHfCheckpoint('mlm', c, { ...mlm.stateDict(), 'cls.predictions.decoder.weight': table });
    const { ids, mask } = inputs(c.vocabSize);

    const loadedMlm = BertForMaskedLM.fromPretrained(dir);
    kx.tidy(() => {
      expect(bytes(loadedMlm.forward(ids, { attentionMask: mask }).logits)).toEqual(bytes(mlm.forward(ids, { attentionMask: mask }).logits));
    });
    loadedMlm.dispose();

    const encoder = BertModel.fromPretrained(dir, { config: { pooler: false } });
    expect(encoder.config.pooler).toBe(false);
    kx.tidy(() => {
      expect(bytes(encoder.forward(ids, { attentionMask: mask }).lastHiddenState)).toEqual(bytes(mlm.encoder.forward(ids, { attentionMask: mask }).lastHiddenState));
    });
    encoder.dispose();

    // the file has no pooler, which a BertModel has unless told
    expect(expectCode(() => BertModel.fromPretrained(dir), 'E_FORMAT').message).toMatch(/missing: bert\.pooler\.dense\.weight, bert\.pooler\.dense\.bias/);
    kx.dispose([ids, mask]);
    mlm.dispose();
  });

  it('gives the typed errors of a load for missing, unexpected and mis-shaped tensors, E_IO without weights, E_FORMAT for a bad config; nothing leaks', async () => {
    const c = small('bert');
    const model = new BertModel(c, { seed: 2 });
    const sd = model.stateDict();
    const { 'encoder.layer.1.output.dense.bias': _dropped, ...withoutOne } = sd;
    const missingDir = await writeHfCheckpoint('missing', c, withoutOne);
    const extraDir = await writeHfCheckpoint('extra', c, { ...sd, 'extra.weight': kx.zeros([1]) });
    const misshapenDir = await writeHfCheckpoint('misshapen', c, { ...sd, 'pooler.dense.bias': kx.zeros([3]) });
    const noWeights = path.join(tmp, 'config-only');
    mkdirSync(noWeights);
    writeFileSync(path.join(noWeights, 'config.json'), JSON.stringify({ model_type: 'bert' }));
    const badConfig = path.join(tmp, 'bad-config');
    mkdirSync(badConfig);
    writeFileSync(path.join(badConfig, 'config.json'), JSON.stringify({ model_type: 'bert', hidden_size: '768' }));
    model.dispose();

    const before = kx.memory().tensors;
    expect(expectCode(() => BertModel.fromPretrained(missingDir), 'E_FORMAT').message).toMatch(/model\.safetensors does not fit this BertModel:\n {2}missing: encoder\.layer\.1\.output\.dense\.bias$/);
    expect(expectCode(() => BertModel.fromPretrained(extraDir), 'E_FORMAT').message).toMatch(/unexpected: extra\.weight/);
    BertModel.fromPretrained(extraDir, { partial: true }).dispose();
    expect(expectCode(() => BertModel.fromPretrained(misshapenDir), 'E_FORMAT').message).toMatch(/mis-shaped: pooler\.dense\.bias \(expected \[16\], got \[3\]\)/);
    expect(expectCode(() => BertModel.fromPretrained(noWeights), 'E_IO').message).toMatch(/holds no weights: neither model\.safetensors nor pytorch_model\.bin/);
    expect(expectCode(() => BertModel.fromPretrained(badConfig), 'E_FORMAT').message).toMatch(/config\.json.*hidden_size/);
    expect(expectCode(() => BertModel.fromPretrained({ config: c, weights: path.join(tmp, 'nowhere.safetensors') }), 'E_IO')).toBeInstanceOf(kx.KexueIOError);
    expect(kx.memory().tensors).toBe(before);
  });
});

describe('the forward with a scope per block', () => {
  it('gives the bits of a forward without scopes, and under a gradient tape the same value and gradients', () => {
    const c = small('roformer', { numLayers: 3, hiddenDropout: 0 });
    const model = new BertModel(c, { seed: 4 });
    const params = model.namedParameters();
    const { ids, mask } = inputs(c.vocabSize);
    const weights = kx.tensor(Float32Array.from({ length: 2 * 7 * 16 }, (_, i) => Math.sin(i)), [2, 7, 16]);
    const loss = (h: kx.Tensor) => kx.sum(kx.mul(h, weights));
    /** The forward as it ran before blocks had scopes of their own: everything alive until the caller's scope ends. */
    const unscoped = () => {
      let x = model.embeddings.forward(ids, kx.zeros([2, 7], { dtype: 'int32' }));
      if (model.embeddings_project) x = model.embeddings_project.forward(x);
      for (const layer of model.layers) x = layer.forward(x, kx.reshape(mask, [2, 1, 1, 7]));
      return x;
    };

    const expected = kx.valueAndGrad(() => loss(unscoped()), params);
    for (const hiddenStates of [true, false]) {
      const inference = kx.tidy(() => bytes(model.forward(ids, { attentionMask: mask, hiddenStates }).lastHiddenState));
      expect(inference).toEqual(kx.tidy(() => bytes(unscoped())));
      let taped: Buffer | undefined;
      const got = kx.valueAndGrad(() => {
        const h = model.forward(ids, { attentionMask: mask, hiddenStates }).lastHiddenState;
        taped = bytes(h);
        return loss(h);
      }, params);
      expect(taped).toEqual(inference);
      expect(bytes(got.value)).toEqual(bytes(expected.value));
      for (const name of Object.keys(params)) expect(bytes(got.grads[name]!), name).toEqual(bytes(expected.grads[name]!));
      kx.dispose(got);
    }
    kx.dispose([expected, ids, mask, weights]);
    model.dispose();
  });
});
