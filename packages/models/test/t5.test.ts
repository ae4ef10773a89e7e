/**
 * T5 PEGASUS / mT5 pieces beside the PyTorch parity suites of model_parity.ts: the relative bucket
 * test vector of ALGORITHMS.md §4.1, config.json reading (the variant's flags, refusals), and
 * fromPretrained from a Hugging Face-style checkpoint directory.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as kx from '@kexue/core-cuda';
import { PrecisionPolicy, T5ForConditionalGeneration, readT5Config, relativePositionBucket, t5Config, t5ConfigFromHF } from '@kexue/models';
import { afterAll, describe, expect, it } from 'vitest';

import { expectCode, useTempDir } from '../../core-cuda/test/helpers.js';
import { loadModelFixture, relError } from './nn_helpers.js';

describe('relative position buckets (ALGORITHMS.md §4.1, 32 buckets, max distance 128)', () => {
  const rel = [-300, -128, -64, -20, -16, -9, -8, -7, -1, 0, 1, 7, 8, 9, 16, 20, 64, 128, 300];
  it('bidirectional (encoder)', () => {
    expect(rel.map((r) => relativePositionBucket(r, true, 32, 128))).toEqual([15, 15, 14, 10, 10, 8, 8, 7, 1, 0, 17, 23, 24, 24, 26, 26, 30, 31, 31]);
  });
  it('unidirectional (decoder): keys after the query share bucket 0', () => {
    expect(rel.map((r) => relativePositionBucket(r, false, 32, 128))).toEqual([31, 31, 26, 17, 16, 9, 8, 7, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });
  it('a non-integer distance is E_ARG', () => expectCode(() => relativePositionBucket(1.5, true, 32, 128), 'E_ARG'));
});

describe('T5 config', () => {
  const json = { model_type: 'mt5', vocab_size: 50000, d_model: 512, d_kv: 64, d_ff: 1024, num_layers: 8, num_heads: 6, feed_forward_proj: 'gated-gelu', tie_word_embeddings: false };
  it("T5 PEGASUS's flags by default, transformers' mT5 with variant 'hf', and a file's own keys over both", () => {
    const pegasus = t5ConfigFromHF(json);
    expect([pegasus.crossPositionBias, pegasus.scaleLogits, pegasus.gatedFfn, pegasus.ffnAct, pegasus.numDecoderLayers]).toEqual([true, true, true, 'gelu_new', 8]);
    const hf = t5ConfigFromHF(json, 'hf');
    expect([hf.crossPositionBias, hf.scaleLogits]).toEqual([false, false]);
    expect(t5ConfigFromHF({ ...json, cross_position_bias: false }).crossPositionBias).toBe(false);
    expect(t5ConfigFromHF({ ...json, dense_act_fn: 'gelu' }).ffnAct).toBe('gelu');
  });
  it('refuses a tied head, a bad variant, bad sizes and token ids outside the vocabulary', () => {
    expect(expectCode(() => t5ConfigFromHF({ ...json, tie_word_embeddings: true }), 'E_FORMAT').message).toMatch(/tie_word_embeddings/);
    expectCode(() => t5ConfigFromHF(json, 'bert' as never), 'E_ARG');
    expectCode(() => t5Config({ dModel: 0 }), 'E_ARG');
    expectCode(() => t5Config({ relativeBuckets: 7 }), 'E_ARG');
    expectCode(() => t5Config({ vocabSize: 10, eosTokenId: 10 }), 'E_ARG');
    expectCode(() => t5ConfigFromHF({ ...json, d_model: 'wide' }), 'E_FORMAT');
  });
});

describe('T5ForConditionalGeneration.fromPretrained', () => {
  const fx = loadModelFixture('t5_pegasus');
  const dir = useTempDir('kexue-t5-');
  afterAll(() => fx.dispose());
  const { ids, mask, decoder_ids: decIds, decoder_mask: decMask } = fx.inputs;
  const logitsOf = (m: T5ForConditionalGeneration) =>
    kx.tidy(() => m.forward({ inputIds: ids!, attentionMask: mask!, decoderInputIds: decIds!, decoderAttentionMask: decMask! }).logits.toFloat32Array().slice());

  it("loads a checkpoint directory (config.json + model.safetensors with transformers' embed_tokens copies) in eval mode", async () => {
    const { cross_position_bias: _c, scale_logits: _s, ...plain } = fx.meta.config as Record<string, unknown>;
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify(plain));
    const weights = { ...fx.weights, 'encoder.embed_tokens.weight': fx.weights['shared.weight']!, 'decoder.embed_tokens.weight': fx.weights['shared.weight']! };
    await kx.io.saveSafetensors(path.join(dir, 'model.safetensors'), weights);
    expect(readT5Config(path.join(dir, 'config.json')).crossPositionBias).toBe(true);
    const model = T5ForConditionalGeneration.fromPretrained(dir);
    expect(model.training).toBe(false);
    kx.tidy(() => {
      expect(relError(kx.tensor(logitsOf(model), fx.outputs.logits!.shape), fx.outputs.logits!)).toBeLessThanOrEqual(1e-4);
    });
    model.dispose();
    // the same weights read as transformers' mT5: no cross-attention bias, no logit scale: other logits
    const hf = T5ForConditionalGeneration.fromPretrained(dir, { variant: 'hf' });
    expect([hf.config.crossPositionBias, hf.config.scaleLogits]).toEqual([false, false]);
    kx.tidy(() => {
      expect(relError(kx.tensor(logitsOf(hf), fx.outputs.logits!.shape), fx.outputs.logits!)).toBeGreaterThan(1e-2);
    });
    hf.dispose();
  });

  it('loads the published layout with one call: config.json + pytorch_model.bin (a torch.save zip written by PyTorch)', () => {
    const here = path.dirname(fileURLToPath(import.meta.url));
    const model = T5ForConditionalGeneration.fromPretrained(path.join(here, 'fixtures', 't5_pegasus_checkpoint'));
    expect([model.config.crossPositionBias, model.config.scaleLogits, model.config.dModel]).toEqual([true, true, 32]);
    kx.tidy(() => {
      expect(relError(kx.tensor(logitsOf(model), fx.outputs.logits!.shape), fx.outputs.logits!)).toBeLessThanOrEqual(1e-4);
    });
    model.dispose();
  });

  // §4.1's base and small sizes scaled down (tools/golden/fx_t5.py SCALED): the release's config.json
  // keys, 12 + 12 and 8 + 8 layers, small's heads × d_kv unequal to d_model, sequences long enough for
  // the logarithmic buckets
  it.each([
    ['base', { numLayers: 12, numDecoderLayers: 12, numHeads: 12, dModel: 24, dKv: 2 }],
    ['small', { numLayers: 8, numDecoderLayers: 8, numHeads: 6, dModel: 16, dKv: 2 }],
  ])('loads the %s size scaled down, as released (config.json + pytorch_model.bin), and matches PyTorch', (size, sizes) => {
    const here = path.dirname(fileURLToPath(import.meta.url));
    const dir = path.join(here, 'fixtures', `t5_pegasus_${size}_scaled`);
    const model = T5ForConditionalGeneration.fromPretrained(dir);
    expect(model.config).toMatchObject({ ...sizes, crossPositionBias: true, scaleLogits: true, ffnAct: 'gelu_new', relativeBuckets: 32 });
    const want = kx.io.loadSafetensors(path.join(dir, 'expected.safetensors'));
    kx.tidy(() => {
      const out = model.forward({ inputIds: want.ids!, attentionMask: want.mask!, decoderInputIds: want.decoder_ids!, decoderAttentionMask: want.decoder_mask! });
      expect(relError(out.encoderOutput, want.encoder!)).toBeLessThanOrEqual(1e-4);
      expect(relError(out.logits, want.logits!)).toBeLessThanOrEqual(1e-4);
    });
    kx.dispose(Object.values(want));
    model.dispose();
  });

  it('a missing tensor is E_FORMAT naming it; a missing directory E_IO', async () => {
    const broken = path.join(dir, 'broken');
    kx.io.makeDirectory(broken);
    writeFileSync(path.join(broken, 'config.json'), JSON.stringify(fx.meta.config));
    const { 'decoder.final_layer_norm.weight': _gone, ...rest } = fx.weights;
    await kx.io.saveSafetensors(path.join(broken, 'model.safetensors'), rest);
    expect(expectCode(() => T5ForConditionalGeneration.fromPretrained(broken), 'E_FORMAT').message).toMatch(/missing: decoder\.final_layer_norm\.weight/);
    expectCode(() => T5ForConditionalGeneration.fromPretrained(path.join(dir, 'nowhere')), 'E_IO');
  });

  it('inputs of the wrong dtype or shape are E_SHAPE', () => {
    const model = new T5ForConditionalGeneration({ vocabSize: 16, dModel: 8, dKv: 4, numHeads: 2, dFf: 8, numLayers: 1 });
    kx.tidy(() => {
      const x = kx.tensor(new Int32Array([2, 3, 4]), [1, 3], { dtype: 'int32' });
      expectCode(() => model.forward({ inputIds: kx.tensor([2, 3, 4], [1, 3]), decoderInputIds: x }), 'E_SHAPE');
      expectCode(() => model.forward({ inputIds: x, attentionMask: kx.ones([1, 4], { dtype: 'uint8' }), decoderInputIds: x }), 'E_SHAPE');
      expectCode(() => model.decode(x, kx.zeros([1, 3, 9])), 'E_SHAPE');
      expect(model.forward({ inputIds: x, decoderInputIds: x }).logits.shape).toEqual([1, 3, 16]);
    });
    model.dispose();
  });
});

describe('T5 under half precision', () => {
  it('keeps its residual stream in float32: sums past float16 range stay finite, and match float32', () => {
    // embeddings at float16's largest finite value: any positive sublayer output (made large here)
    // pushes a float16 stream to infinity; the float32 stream only grows
    const model = new T5ForConditionalGeneration({ vocabSize: 16, dModel: 8, dKv: 4, numHeads: 2, dFf: 8, numLayers: 2, numDecoderLayers: 1, dropoutRate: 0 }, { seed: 3 }).eval();
    const params = model.namedParameters();
    model.setParameter('shared.weight', kx.fullLike(params['shared.weight']!, 65504));
    for (const [name, w] of Object.entries(params)) if (/\.(o|wo)\.weight$/.test(name)) model.setParameter(name, kx.mul(w, 100));
    const ids = kx.tensor(new Int32Array([2, 3, 4, 5]), [1, 4], { dtype: 'int32' });
    const run = (compute: 'float32' | 'float16' | 'bfloat16') =>
      kx.tidy(() => {
        const out = new PrecisionPolicy({ compute }).forward(model, () => kx.sum(model.forward({ inputIds: ids, decoderInputIds: ids }).logits));
        return out.item();
      });
    const full = run('float32');
    expect(Number.isFinite(full)).toBe(true);
    for (const compute of ['float16', 'bfloat16'] as const) {
      const half = run(compute);
      expect(Number.isFinite(half), compute).toBe(true);
      expect(Math.abs(half - full), compute).toBeLessThanOrEqual(0.05 * Math.abs(full) + 0.5);
    }
    ids.dispose();
    model.dispose();
  });
});
