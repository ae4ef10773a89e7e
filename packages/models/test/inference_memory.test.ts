/**
 * The forward frees each block's intermediates once the block's output exists: the live and peak
 * native bytes of an inference stay near one block's worth, however many blocks there are. A file
 * of its own, so that the process's peak counter starts with these tests.
 */
import * as kx from '@kexue/core-cuda';
import { BertModel, NerModel, bertConfig } from '@kexue/models';
import { describe, expect, it } from 'vitest';

const B = 4;
const T = 64;
const LAYERS = 6;

function batch(vocab: number): { ids: kx.Tensor; mask: kx.Tensor } {
  const ids = kx.tensor(Int32Array.from({ length: B * T }, (_, i) => (i * 13 + 1) % vocab), [B, T], { dtype: 'int32' });
  const mask = kx.tensor(Uint8Array.from({ length: B * T }, (_, i) => (i % T < T - 3 * Math.floor(i / T) ? 1 : 0)), [B, T], { dtype: 'uint8' });
  return { ids, mask };
}

describe('inference memory', () => {
  it('holds one block of activations at a time: live and peak bytes of a forward stay under two blocks', () => {
    const c = bertConfig({ kind: 'bert', vocabSize: 50, hiddenSize: 64, numLayers: LAYERS, numHeads: 4, intermediateSize: 256, maxPositions: T });
    const model = new BertModel(c, { seed: 1 }).eval();
    const { ids, mask } = batch(c.vocabSize);
    // the first eval forward packs each Linear's weight once (model memory, kept with the model:
    // docs/models.md); its peak is that forward's activations on top of the packed copies made so far
    kx.tidy(() => void model.forward(ids, { attentionMask: mask, hiddenStates: false }));
    const base = kx.memory().bytes;

    // first (the peak counter only grows): the forward, and what is alive once it has returned
    const live = kx.tidy(() => {
      model.forward(ids, { attentionMask: mask, hiddenStates: false });
      return kx.memory().bytes - base;
    });
    const peak = kx.memory().peakBytes - base;
    const liveWithStates = kx.tidy(() => {
      model.forward(ids, { attentionMask: mask });
      return kx.memory().bytes - base;
    });

    // the same blocks run without scopes of their own: every block's intermediates alive at the end
    const unscoped = kx.tidy(() => {
      let x = model.embeddings.forward(ids, kx.zeros([B, T], { dtype: 'int32' }));
      for (const layer of model.layers) x = layer.forward(x, kx.reshape(mask, [B, 1, 1, T]));
      return kx.memory().bytes - base;
    });
    const block = unscoped / LAYERS;

    const hiddenState = B * T * c.hiddenSize * 4;
    expect(block).toBeGreaterThan(8 * hiddenState); // a block makes many tensors of the hidden state's size
    expect(live).toBeLessThan(block / 2); // the last output, the pooler's, the masks
    expect(peak).toBeLessThan(2 * block);
    expect(liveWithStates).toBeLessThan(LAYERS * hiddenState + block / 2); // every block's output, nothing else
    expect(kx.memory().bytes).toBe(base);
    kx.dispose([ids, mask]);
    model.dispose();
  });

  it("the NER model's forward (NerPredictor's) holds as many tensors after it whatever the encoder's depth", () => {
    const alive = (layers: number) => {
      const model = new NerModel(
        { kind: 'roformer', attention: 'softmax', hidden: 32, layers, heads: 2, intermediate: 64, dropout: 0.1, vocab: '', max_positions: 512 },
        { kind: 'egp', size: 8 },
        50,
        3,
        { seed: 2 },
      ).eval();
      const { ids, mask } = batch(50);
      kx.tidy(() => void model.forward(ids, mask)); // packs each Linear's weight once (kept with the model)
      const before = kx.memory().tensors;
      const count = kx.tidy(() => {
        model.forward(ids, mask);
        return kx.memory().tensors - before;
      });
      kx.dispose([ids, mask]);
      model.dispose();
      return count;
    };
    expect(alive(4)).toBe(alive(1));
  });
});

describe('forwards outside a tidy scope', () => {
  it('BertModel.forward leaves only its outputs alive (its default token types, mask view and pooler input are freed)', () => {
    const m = new BertModel({ kind: 'bert', vocabSize: 50, hiddenSize: 16, numLayers: 2, numHeads: 2, intermediateSize: 32 }).eval();
    const ids = kx.tensor(new Int32Array([1, 2, 3, 4]), [1, 4], { dtype: 'int32' });
    const mask = kx.ones([1, 4], { dtype: 'uint8' });
    const run = () => {
      const o = m.forward(ids, { attentionMask: mask, hiddenStates: false });
      kx.dispose([o.lastHiddenState, o.poolerLinear!, o.pooled!]);
    };
    run(); // packs the eval-mode Linears' weights, which stay with the model
    const before = kx.memory().tensors;
    run();
    expect(kx.memory().tensors).toBe(before);
    kx.dispose([ids, mask]);
    m.dispose();
  });
});
