/**
 * Compiled training steps (kx.compile around forward + backward + optimizer step, as the tasks'
 * train loops run them): a small BERT masked-LM step and a small RoFormer + Efficient GlobalPointer
 * NER step, with dropout, Tiger (the tasks' default, with hfParamClass), a warmup schedule and
 * global-norm clipping, trained 200 steps compiled and eagerly from the same seed.
 *
 * Tolerance: everything a step computes is the same (the dropout masks, the schedule, the counters,
 * the clip factor, computed on the device from the same float32 norm) except inside fused groups,
 * whose multiply-adds round once where eager rounds twice (FUSION.md numerics). These steps have two
 * small groups, and the curves measured identical bit for bit; but Tiger moves by sign(m), so a
 * one-ulp difference could flip an update where m is near 0 and the curves would drift apart slowly:
 * the losses must agree within 2e-3 relative at every step, and the parameters after 200 steps
 * within 2e-3 of each tensor's largest magnitude.
 */
import { describe, expect, it } from 'vitest';

import * as kx from '@kexue/core-cuda';
import { BertForMaskedLM, BertModel, EfficientGlobalPointer, sparseGlobalPointerLoss } from '@kexue/models';
import { hfParamClass, Tiger, warmupLinear } from '@kexue/optimizers';

const STEPS = 200;
const TOLERANCE = 2e-3;
const [B, T, V, HIDDEN] = [4, 12, 64, 32];
const encoderSizes = { vocabSize: V, hiddenSize: HIDDEN, numLayers: 2, numHeads: 2, intermediateSize: 64, hiddenDropout: 0.1 };

/** Deterministic integers in [0, hi) (a hash of the position and the seed). */
function ints(n: number, hi: number, seed: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => Math.abs(((i + 1) * 2654435761 + seed * 40503) | 0) % hi);
}

const optimizer = () =>
  new Tiger({ learningRate: 3e-3, paramClass: hfParamClass, clipNorm: 0.05 /* below the gradients' norm: the steps clip */, schedule: warmupLinear({ warmupSteps: 20, totalSteps: STEPS }) });

/** A train step over a loss of the batch's tensors: the loss, its gradients, the clipped Tiger step; returns [loss, grad norm]. */
function trainStep(params: Record<string, kx.Tensor>, opt: Tiger, loss: (...batch: kx.Tensor[]) => kx.Tensor) {
  return (...batch: kx.Tensor[]): kx.Tensor[] => {
    const { value, grads } = kx.valueAndGrad(() => loss(...batch), params);
    const norm = kx.globalNormTensor(Object.values(grads));
    opt.step(params, grads, { gradNorm: norm });
    kx.dispose(Object.values(grads));
    return [value, norm];
  };
}

interface Side {
  params: Record<string, kx.Tensor>;
  step: (...batch: kx.Tensor[]) => kx.Tensor[];
  dispose(): void;
}

/** Trains eagerly and compiled from the same seed on the same batches; returns both loss curves. */
function curves(build: (rng: kx.Philox) => Side, batch: (i: number) => kx.Tensor[]) {
  const eager = build(new kx.Philox(5));
  const side = build(new kx.Philox(5));
  const compiled = kx.compile(side.step);
  const losses: [number, number][] = [];
  for (let i = 0; i < STEPS; i++) {
    const inputs = batch(i % 10);
    const e = kx.tidy(() => eager.step(...inputs).map((t) => t.item()));
    const c = kx.tidy(() => compiled(...inputs).map((t) => t.toFloat32Array()[0]!));
    losses.push([e[0]!, c[0]!]);
    kx.dispose(inputs);
  }
  // the parameters the 200 updates made, each relative to its largest magnitude
  let paramError = 0;
  for (const [name, p] of Object.entries(eager.params)) {
    const [a, b] = [p.toFloat32Array(), side.params[name]!.toFloat32Array()];
    let scale = 0;
    let diff = 0;
    a.forEach((v, i) => {
      scale = Math.max(scale, Math.abs(v));
      diff = Math.max(diff, Math.abs(v - b[i]!));
    });
    paramError = Math.max(paramError, diff / scale);
  }
  eager.dispose();
  side.dispose();
  return { losses, paramError, stats: compiled.stats };
}

function expectSameRun({ losses, paramError }: { losses: readonly [number, number][]; paramError: number }): void {
  expect(paramError).toBeLessThanOrEqual(TOLERANCE);
  let worst = 0;
  for (const [e, c] of losses) worst = Math.max(worst, Math.abs(c - e) / Math.abs(e));
  expect(worst).toBeLessThanOrEqual(TOLERANCE);
  // it learns: the last steps' mean loss is below the first steps'
  const mean = (xs: readonly [number, number][]) => xs.reduce((s, [e]) => s + e, 0) / xs.length;
  expect(mean(losses.slice(-20))).toBeLessThan(mean(losses.slice(0, 20)));
}

describe('compiled training steps equal eager ones over 200 steps', () => {
  it('BERT masked LM (dropout 0.1, Tiger, clipping)', () => {
    const M = 8;
    const build = (rng: kx.Philox): Side => {
      const model = new BertForMaskedLM({ kind: 'bert', ...encoderSizes }, { seed: 1, dropoutRng: rng }).train();
      const params = model.namedParameters();
      const opt = optimizer();
      const loss = (ids: kx.Tensor, mask: kx.Tensor, where: kx.Tensor, targets: kx.Tensor) => {
        const h = model.encoder.forward(ids, { attentionMask: mask, hiddenStates: false }).lastHiddenState;
        const chosen = kx.embedding(where, kx.reshape(h, [B * T, HIDDEN]));
        return kx.crossEntropy(kx.reshape(model.cls.predictions.forward(chosen), [M, V]), targets);
      };
      return { params, step: trainStep(params, opt, loss), dispose: () => (model.dispose(), opt.dispose()) };
    };
    const batch = (i: number) => {
      const mask = new Uint8Array(B * T).fill(1);
      for (let b = 0; b < B; b++) for (let t = T - (b % 3); t < T; t++) mask[b * T + t] = 0;
      return [
        kx.tensor(ints(B * T, V, i), [B, T], { dtype: 'int32' }),
        kx.tensor(mask, [B, T], { dtype: 'uint8' }),
        kx.tensor(ints(M, B * T - 3, i + 100), [1, M], { dtype: 'int32' }),
        kx.tensor(ints(M, V, i + 200), [M], { dtype: 'int32' }),
      ];
    };
    const run = curves(build, batch);
    expect(run.stats).toEqual({ traces: 1, replays: STEPS - 1 });
    expectSameRun(run);
  });

  it('RoFormer + Efficient GlobalPointer NER (sparse GP loss, dropout 0.1, Tiger, clipping)', () => {
    const [types, P] = [3, 4];
    const build = (rng: kx.Philox): Side => {
      const encoder = new BertModel({ kind: 'roformer', ...encoderSizes }, { seed: 2, dropoutRng: rng }).train();
      const head = new EfficientGlobalPointer({ hidden: HIDDEN, heads: types, headSize: 8, rng: 9 });
      const params = { ...encoder.namedParameters('roformer.'), ...head.namedParameters('global_pointer.') };
      const opt = optimizer();
      const loss = (ids: kx.Tensor, mask: kx.Tensor, spans: kx.Tensor) =>
        sparseGlobalPointerLoss(head.forward(encoder.forward(ids, { attentionMask: mask, hiddenStates: false }).lastHiddenState, mask), spans);
      return { params, step: trainStep(params, opt, loss), dispose: () => (encoder.dispose(), head.dispose(), opt.dispose()) };
    };
    const batch = (i: number) => {
      const mask = new Uint8Array(B * T).fill(1);
      for (let b = 0; b < B; b++) for (let t = T - 2 * (b % 2); t < T; t++) mask[b * T + t] = 0;
      // spans start ≤ end inside the first T − 2 tokens, flattened i·T + j; 0 pads
      const spans = Int32Array.from(ints(B * types * P, 1000, i + 300), (r, k) => {
        if (k % P === P - 1) return 0;
        const s = 1 + (r % (T - 4));
        return s * T + s + ((r >> 4) % 2);
      });
      return [kx.tensor(ints(B * T, V, i + 400), [B, T], { dtype: 'int32' }), kx.tensor(mask, [B, T], { dtype: 'uint8' }), kx.tensor(spans, [B, types, P], { dtype: 'int32' })];
    };
    const run = curves(build, batch);
    expect(run.stats).toEqual({ traces: 1, replays: STEPS - 1 });
    expectSameRun(run);
  });
});
