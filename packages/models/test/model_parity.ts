/**
 * Model parity (the llm.c test), shared by bert.test.ts (CPU) and bert.cuda.test.ts (CUDA): BERT
 * masked LM (+ pooler) and RoFormer + Efficient GlobalPointer built by tools/golden/fx_models.py in
 * PyTorch with fixed weights, and T5 PEGASUS / HF mT5 encoder–decoders built by tools/golden/fx_t5.py
 * (T5ForConditionalGeneration's names); kexue loads the weights by their HF names, moves the model to the
 * device, and must match logits (≤ 1e-4 relative), loss, every gradient (≤ 1e-3) and the losses of
 * ten AdamW steps (≤ 1e-4). Eval mode (no dropout).
 */
import { afterAll, describe, expect, it } from 'vitest';

import * as kx from '@kexue/core-cuda';
import {
  BertForMaskedLM,
  BertModel,
  EfficientGlobalPointer,
  Module,
  T5ForConditionalGeneration,
  globalPointerLoss,
  seq2seqLoss,
  t5ConfigFromHF,
  type BertConfig,
} from '@kexue/models';
import { AdamW } from '@kexue/optimizers';

import { loadModelFixture, relError, type ModelFixture } from './nn_helpers.js';

function configOf(fx: ModelFixture, kind: BertConfig['kind']): Partial<BertConfig> & { kind: BertConfig['kind'] } {
  const c = fx.meta.config;
  return {
    kind,
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    intermediateSize: c.intermediate_size,
    maxPositions: c.max_position_embeddings,
    typeVocabSize: c.type_vocab_size,
    layerNormEps: c.layer_norm_eps,
    hiddenAct: c.hidden_act,
  };
}

/** Compares every gradient with PyTorch's, by name. */
/**
 * Compares every gradient with PyTorch's, by name: max error ≤ 1e-3 of the tensor's largest
 * gradient. A gradient that is zero in exact arithmetic (the key bias: softmax ignores a constant
 * added to a row's scores) is rounding noise in both; it is judged against 1e-3 of the largest
 * gradient of the whole model instead of its own scale.
 */
function expectGrads(grads: Record<string, kx.Tensor>, want: Record<string, kx.Tensor>): void {
  expect(Object.keys(grads).sort()).toEqual(Object.keys(want).sort());
  const absMax = (t: kx.Tensor) => t.toFloat32Array().reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const globalScale = Math.max(...Object.values(want).map(absMax));
  for (const [name, g] of Object.entries(grads)) {
    const e = want[name]!;
    const scale = absMax(e);
    const err = relError(g, e) * (scale || 1);
    expect(err, `grad ${name}: max error ${err}, scale ${scale}`).toBeLessThanOrEqual(1e-3 * Math.max(scale, 1e-3 * globalScale));
  }
}

/** Ten AdamW steps with the fixture's settings; returns the loss before each step. */
function tenSteps(params: Record<string, kx.Tensor>, lossFn: () => kx.Tensor, a: Record<string, number>): number[] {
  const opt = new AdamW({ learningRate: a.lr!, beta1: a.beta1!, beta2: a.beta2!, eps: a.eps!, weightDecay: a.weightDecay! });
  const losses: number[] = [];
  for (let s = 0; s < 10; s++) {
    const { value, grads } = kx.valueAndGrad(() => lossFn(), params);
    losses.push(value.item());
    opt.step(params, grads);
    kx.dispose([value, grads]);
  }
  return losses;
}

function expectSteps(got: number[], want: number[]): void {
  got.forEach((l, i) => expect(Math.abs(l - want[i]!) / Math.abs(want[i]!), `step ${i}: ${l} vs ${want[i]}`).toBeLessThanOrEqual(1e-4));
}

/** The NER model of the parity test: RoFormer encoder + Efficient GlobalPointer head. */
class RoFormerEGP extends Module {
  readonly roformer: BertModel;
  readonly global_pointer: EfficientGlobalPointer;
  constructor(config: Partial<BertConfig> & { kind: 'roformer' }, heads: number, headSize: number) {
    super();
    this.roformer = this.addModule('roformer', new BertModel(config));
    this.global_pointer = this.addModule('global_pointer', new EfficientGlobalPointer({ hidden: config.hiddenSize!, heads, headSize }));
  }
  forward(ids: kx.Tensor, types: kx.Tensor, mask: kx.Tensor): kx.Tensor {
    const h = this.roformer.forward(ids, { tokenTypeIds: types, attentionMask: mask }).lastHiddenState;
    return this.global_pointer.forward(h, mask);
  }
}

/** The inputs of a fixture on `device` (copies when it is not the CPU). */
function onDevice(inputs: Record<string, kx.Tensor>, device: string): Record<string, kx.Tensor> {
  return device === 'cpu' ? inputs : Object.fromEntries(Object.entries(inputs).map(([k, t]) => [k, t.to(device)]));
}

/** Defines both parity suites with the models and their inputs on `device`. */
export function describeModelParity(device: string): void {
  describe(`BERT masked LM vs PyTorch on ${device}`, () => {
    const fx = loadModelFixture('bert_mlm');
    const model = new BertForMaskedLM({ ...configOf(fx, 'bert'), pooler: true }, { seed: 1 }).eval();
    const { input_ids: ids, token_type_ids: types, attention_mask: mask, labels } = onDevice(fx.inputs, device);
    afterAll(() => {
      fx.dispose();
      model.dispose();
      kx.dispose([ids, types, mask, labels].filter((t) => t && t.device !== 'cpu'));
    });
    const [B, T] = ids!.shape as [number, number];

    const lossOf = (m: BertForMaskedLM) => {
      const out = m.forward(ids!, { tokenTypeIds: types!, attentionMask: mask! });
      const V = out.logits.shape[2]!;
      const ce = kx.crossEntropy(kx.reshape(out.logits, [B * T, V]), kx.reshape(labels!, [B * T]), { ignoreIndex: -100 });
      return { out, loss: kx.add(ce, kx.mul(kx.mean(kx.mul(out.pooled!, out.pooled!)), 0.1)) };
    };

    it('loads the HF-named weights with nothing missing or unexpected', () => {
      const report = model.loadStateDict(fx.weights);
      model.to(device);
      expect(report.missing).toEqual([]);
      expect(report.unexpected).toEqual([]);
      expect(report.mismatched).toEqual([]);
      expect(report.loaded.length).toBe(Object.keys(fx.weights).length);
      expect(Object.keys(model.namedParameters()).sort()).toEqual(Object.keys(fx.weights).sort());
    });

    it('logits, hidden states, pooled output and loss match', () => {
      kx.tidy(() => {
        const { out, loss } = lossOf(model);
        expect(relError(out.logits, fx.outputs.logits!)).toBeLessThanOrEqual(1e-4);
        expect(relError(out.hiddenStates[0]!, fx.outputs.hidden0!)).toBeLessThanOrEqual(1e-4);
        expect(relError(out.lastHiddenState, fx.outputs.hidden!)).toBeLessThanOrEqual(1e-4);
        expect(relError(out.pooled!, fx.outputs.pooled!)).toBeLessThanOrEqual(1e-4);
        expect(Math.abs(loss.item() - fx.meta.loss) / fx.meta.loss).toBeLessThanOrEqual(1e-5);
      });
    });

    it('every gradient matches (the tied decoder adds into the word embeddings)', () => {
      const params = model.namedParameters();
      const { value, grads } = kx.valueAndGrad(() => lossOf(model).loss, params);
      expectGrads(grads, fx.grads);
      kx.dispose([value, grads]);
    });

    it('the losses of ten AdamW steps match torch.optim.AdamW', () => {
      const m = new BertForMaskedLM({ ...configOf(fx, 'bert'), pooler: true }).eval();
      m.loadStateDict(fx.weights);
      m.to(device);
      expectSteps(tenSteps(m.namedParameters(), () => lossOf(m).loss, fx.meta.adamw), fx.meta.steps);
      m.dispose();
    });
  });

  describe(`RoFormer + Efficient GlobalPointer vs PyTorch on ${device}`, () => {
    const fx = loadModelFixture('roformer_egp');
    const cfg = configOf(fx, 'roformer') as Partial<BertConfig> & { kind: 'roformer' };
    const model = new RoFormerEGP(cfg, fx.meta.heads, fx.meta.headSize).eval();
    const { input_ids: ids, token_type_ids: types, attention_mask: mask, labels } = onDevice(fx.inputs, device);
    afterAll(() => {
      fx.dispose();
      model.dispose();
      kx.dispose([ids, types, mask, labels].filter((t) => t && t.device !== 'cpu'));
    });
    const lossOf = (m: RoFormerEGP) => globalPointerLoss(m.forward(ids!, types!, mask!), labels!);

    it('loads by name; RoFormer has no position table and no pooler', () => {
      const report = model.loadStateDict(fx.weights);
      model.to(device);
      expect([report.missing, report.unexpected, report.mismatched]).toEqual([[], [], []]);
      expect(Object.keys(model.namedParameters()).some((n) => n.includes('position_embeddings') || n.includes('pooler'))).toBe(false);
    });

    it('scores (−∞ exactly where masked) and loss match', () => {
      kx.tidy(() => {
        const s = model.forward(ids!, types!, mask!);
        expect(relError(s, fx.outputs.scores!)).toBeLessThanOrEqual(1e-4);
        const loss = globalPointerLoss(s, labels!).item();
        expect(Math.abs(loss - fx.meta.loss) / fx.meta.loss).toBeLessThanOrEqual(1e-5);
      });
    });

    it('every gradient matches', () => {
      const { value, grads } = kx.valueAndGrad(() => lossOf(model), model.namedParameters());
      expectGrads(grads, fx.grads);
      kx.dispose([value, grads]);
    });

    it('the losses of ten AdamW steps match torch.optim.AdamW', () => {
      const m = new RoFormerEGP(cfg, fx.meta.heads, fx.meta.headSize).eval();
      m.loadStateDict(fx.weights);
      m.to(device);
      expectSteps(tenSteps(m.namedParameters(), () => lossOf(m), fx.meta.adamw), fx.meta.steps);
      m.dispose();
    });
  });

  for (const name of ['t5_pegasus', 'mt5_hf'] as const) {
    describe(`${name === 't5_pegasus' ? 'T5 PEGASUS (cross-attention bias, logit scale)' : 'HF mT5'} vs PyTorch on ${device}`, () => {
      const fx = loadModelFixture(name);
      const config = t5ConfigFromHF(fx.meta.config);
      const model = new T5ForConditionalGeneration(config, { seed: 1 }).eval();
      const { ids, mask, decoder_ids: decIds, decoder_mask: decMask, labels } = onDevice(fx.inputs, device);
      afterAll(() => {
        fx.dispose();
        model.dispose();
        kx.dispose([ids, mask, decIds, decMask, labels].filter((t) => t && t.device !== 'cpu'));
      });
      const forward = (m: T5ForConditionalGeneration) =>
        m.forward({ inputIds: ids!, attentionMask: mask!, decoderInputIds: decIds!, decoderAttentionMask: decMask! });
      const lossOf = (m: T5ForConditionalGeneration) => seq2seqLoss(forward(m).logits, labels!, decMask!);

      it('reads the flags from config.json and loads the HF-named weights with nothing missing or unexpected', () => {
        expect([config.crossPositionBias, config.scaleLogits]).toEqual(name === 't5_pegasus' ? [true, true] : [false, false]);
        const report = model.loadStateDict(fx.weights);
        model.to(device);
        expect([report.missing, report.unexpected, report.mismatched]).toEqual([[], [], []]);
        expect(Object.keys(model.namedParameters()).sort()).toEqual(Object.keys(fx.weights).sort());
      });

      it('position biases, encoder and decoder outputs, logits and loss match', () => {
        kx.tidy(() => {
          const [, S] = ids!.shape as [number, number];
          const T = decIds!.shape[1]!;
          expect(relError(model.encoder.positionBias(S, S), fx.outputs.encoder_bias!)).toBe(0);
          expect(relError(model.decoder.positionBias(T, T), fx.outputs.decoder_bias!)).toBe(0);
          if (fx.outputs.cross_bias) expect(relError(model.decoder.positionBias(T, S), fx.outputs.cross_bias)).toBe(0);
          const out = forward(model);
          expect(relError(out.encoderOutput, fx.outputs.encoder!)).toBeLessThanOrEqual(1e-4);
          expect(relError(out.decoderOutput, fx.outputs.decoder!)).toBeLessThanOrEqual(1e-4);
          expect(relError(out.logits, fx.outputs.logits!)).toBeLessThanOrEqual(1e-4);
          const loss = seq2seqLoss(out.logits, labels!, decMask!).item();
          expect(Math.abs(loss - fx.meta.loss) / fx.meta.loss).toBeLessThanOrEqual(1e-5);
        });
      });

      it('every gradient matches (the shared embedding gathers both stacks\' gradients)', () => {
        const { value, grads } = kx.valueAndGrad(() => lossOf(model), model.namedParameters());
        expectGrads(grads, fx.grads);
        kx.dispose([value, grads]);
      });

      it('the losses of ten AdamW steps match torch.optim.AdamW', () => {
        const m = new T5ForConditionalGeneration(config).eval();
        m.loadStateDict(fx.weights);
        m.to(device);
        expectSteps(tenSteps(m.namedParameters(), () => lossOf(m), fx.meta.adamw), fx.meta.steps);
        m.dispose();
      });
    });
  }
}
