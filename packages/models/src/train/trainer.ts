/**
 * The training loop shared by every task: seeded shuffled batches, gradient accumulation, the
 * optimizer update, logging to metrics.jsonl, periodic evaluation, and atomic checkpoints of
 * everything needed to continue (weights, optimizer state, schedule position inside the optimizer's
 * counters, dropout generator offset, data position, running averages). A run resumed from a
 * checkpoint computes exactly what the uninterrupted run computes: the same batches in the same
 * order, the same dropout masks, the same updates, so the same losses bit for bit (same build).
 * Under a mixed-precision policy the forward runs in the compute dtype over float32 masters, and a
 * loss scaler (when the policy has one) scales the loss, skips overflowing updates and is
 * checkpointed with the rest.
 * The loop runs where the task's model is (the task makes its batches there); the checkpoints
 * hold host copies whatever the device.
 */
import { add, dispose, globalNorm, keep, mul, tidy, valueAndGrad, type Philox, type Tensor } from '@kexue/core-cuda';
import type { Optimizer, StepResult } from '@kexue/optimizers';

import type { Batch, Dataset } from '../data/dataset.js';
import type { Module } from '../nn/module.js';
import { writeCheckpoint, type Architecture, type TrainerState } from './checkpoint.js';
import { MetricsLog } from './metrics.js';
import { PrecisionPolicy } from './precision.js';
import type { TrainObserver } from './events.js';

/** What a task gives the trainer. */
export interface TrainTask<R> {
  /** 'ner', 'mlm', … (recorded in checkpoints). */
  readonly name: string;
  readonly model: Module;
  /** The encoded training records. */
  readonly data: Dataset<R>;
  /** The loss of one micro-batch (a scalar), computed with the model's live parameters. */
  loss(batch: Batch<R>): Tensor;
  /** Real tokens in a batch (for tokens/s). */
  tokens(records: R[]): number;
  /** Held-out evaluation (the model is in eval mode during the call). */
  evaluate?(): Promise<Record<string, number>>;
  /** The evaluation metric that picks the best checkpoint. */
  readonly mainMetric?: { name: string; higherIsBetter: boolean };
}

export interface TrainLoopOptions {
  runDir: string;
  batchSize: number;
  /** Micro-batches per update (gradients averaged). */
  gradAccum: number;
  /** Updates in all. */
  totalSteps: number;
  seed: number;
  logEvery: number;
  /** Evaluate every N updates; 0 = at the end of each epoch. Always at the end. */
  evalEvery: number;
  /** Save the last checkpoint every N updates (0 = only at evaluations and at the end). */
  saveEvery: number;
  /** Stop (with a checkpoint, as if interrupted) after this many updates; 0 = never. */
  stopAt: number;
  optimizer: Optimizer;
  /** The dropout generator the model draws from. */
  dropout: Philox;
  arch: Architecture;
  config: unknown;
  files: Record<string, string>;
  /** Receives the loop's events (resume, step, log, eval, done). */
  onEvent: TrainObserver;
  /** The state to continue from (a resumed run), else a fresh start. */
  resume?: TrainerState;
  /** Compute dtype and loss scaling; default float32 without scaling. */
  precision?: PrecisionPolicy;
}

export interface TrainSummary {
  step: number;
  stoppedEarly: boolean;
  lastEval: Record<string, number> | null;
  best: TrainerState['best'];
  tokensPerSecond: number;
}

function freshState(): TrainerState {
  return { step: 0, position: { epoch: 0, index: 0 }, dropoutOffset: 0, tokens: 0, elapsedMs: 0, window: { lossSum: 0, updates: 0, tokens: 0, ms: 0 }, best: null };
}

const round = (x: number, digits: number) => Number(x.toPrecision(digits));

/** Runs the loop until totalSteps (or stopAt) updates are done. */
export async function trainLoop<R>(task: TrainTask<R>, o: TrainLoopOptions): Promise<TrainSummary> {
  const state: TrainerState = o.resume ? structuredClone(o.resume) : freshState();
  if (o.dropout.offset !== state.dropoutOffset) throw new Error(`trainLoop: the dropout generator is at ${o.dropout.offset}, the state at ${state.dropoutOffset}`);
  const metrics = new MetricsLog(`${o.runDir}/metrics.jsonl`);
  if (o.resume) {
    const dropped = await metrics.truncateAfter(state.step);
    o.onEvent({ type: 'resume', step: state.step, epoch: state.position.epoch, index: state.position.index, droppedRecords: dropped });
  }
  const loader = task.data.batches({ batchSize: o.batchSize, shuffle: true, seed: o.seed, position: state.position });
  const params = task.model.namedParameters();
  const policy = o.precision ?? new PrecisionPolicy();
  const scaler = policy.createScaler();
  if (scaler) {
    if (state.lossScaler) scaler.loadState(state.lossScaler);
    state.skippedSteps ??= 0;
  }
  task.model.train();
  let lastEval: Record<string, number> | null = null;

  const save = async (best: { metric: string; value: number } | null) => {
    state.position = loader.position;
    state.dropoutOffset = o.dropout.offset;
    if (scaler) state.lossScaler = scaler.state();
    await writeCheckpoint(o.runDir, { task: task.name, arch: o.arch, weights: params, optimizer: o.optimizer, state, config: o.config, files: o.files }, best);
  };

  const evaluate = async (): Promise<{ metric: string; value: number } | null> => {
    if (!task.evaluate) return null;
    task.model.eval();
    const t0 = performance.now();
    let result: Record<string, number>;
    try {
      result = await task.evaluate();
    } finally {
      task.model.train();
    }
    lastEval = result;
    const seconds = round((performance.now() - t0) / 1000, 4);
    metrics.append({ kind: 'eval', step: state.step, epoch: loader.position.epoch, ...result, eval_s: seconds });
    const main = task.mainMetric;
    const value = main ? result[main.name] : undefined;
    const better = main !== undefined && value !== undefined && (!state.best || (main.higherIsBetter ? value > state.best.value : value < state.best.value));
    o.onEvent({ type: 'eval', step: state.step, metrics: result, seconds, best: better });
    if (!better) return null;
    state.best = { metric: main.name, value, step: state.step };
    return { metric: main.name, value };
  };

  const stopAt = o.stopAt > 0 ? Math.min(o.stopAt, o.totalSteps) : o.totalSteps;
  // for the progress events: wall time since the loop began, and this process's training time
  const started = performance.now();
  let trainedMs = 0;
  let updatesHere = 0;
  let stoppedEarly = false;
  while (state.step < o.totalSteps) {
    if (state.step >= stopAt) {
      stoppedEarly = true;
      break;
    }
    const t0 = performance.now();
    const epochBefore = loader.position.epoch;
    let acc: Record<string, Tensor> | null = null;
    let lossSum = 0;
    let tokens = 0;
    const scale = scaler ? scaler.scale : 1;
    for (let micro = 0; micro < o.gradAccum; micro++) {
      const batch = loader.next();
      tokens += task.tokens(batch.records);
      // The scale seeds the backward pass (the value stays unscaled), so crossEntropy's forward can
      // compute the scaled gradient itself.
      const { value, grads } = valueAndGrad(() => policy.forward(task.model, () => task.loss(batch)), params, {
        outputGradient: scale,
      });
      lossSum += value.item();
      value.dispose();
      if (acc === null) acc = grads;
      else {
        const prev: Record<string, Tensor> = acc;
        acc = tidy(() => Object.fromEntries(Object.entries(prev).map(([k, a]) => [k, keep(add(a, grads[k]!))])));
        dispose([Object.values(prev), Object.values(grads)]);
      }
    }
    let grads = acc!;
    if (o.gradAccum > 1) {
      const sum = grads;
      grads = tidy(() => Object.fromEntries(Object.entries(sum).map(([k, a]) => [k, keep(mul(a, 1 / o.gradAccum))])));
      dispose(Object.values(sum));
    }
    // the norm of the scaled gradients; logged unscaled
    const scaledNorm = globalNorm(Object.values(grads));
    const gradNorm = scaledNorm / scale;
    let result: StepResult | null;
    if (scaler) {
      result = scaler.step(o.optimizer, params, grads, { gradNorm: scaledNorm }).result;
      if (!result) state.skippedSteps! += 1;
    } else {
      result = o.optimizer.step(params, grads, { gradNorm });
    }
    dispose(Object.values(grads));
    state.step++;
    const loss = lossSum / o.gradAccum;
    const ms = performance.now() - t0;
    state.tokens += tokens;
    state.elapsedMs += ms;
    trainedMs += ms;
    updatesHere++;
    const w = state.window;
    w.lossSum += loss;
    w.updates++;
    w.tokens += tokens;
    w.ms += ms;
    const epoch = loader.position.epoch;
    o.onEvent({
      type: 'step',
      step: state.step,
      total: o.totalSteps,
      epoch,
      loss: w.lossSum / w.updates,
      tokensPerSecond: (w.tokens / w.ms) * 1000,
      elapsedMs: performance.now() - started,
      etaMs: (trainedMs / updatesHere) * (stopAt - state.step),
    });
    if (state.step % o.logEvery === 0 || state.step === o.totalSteps) {
      const rec = {
        kind: 'train' as const,
        step: state.step,
        epoch,
        loss: w.lossSum / w.updates,
        // a skipped update reports the rate the next one will use
        lr: o.optimizer.learningRate * (result ? result.scheduleMultiplier : o.optimizer.scheduleMultiplier()),
        grad_norm: gradNorm,
        tokens_per_s: round((w.tokens / w.ms) * 1000, 4),
        elapsed_s: round(state.elapsedMs / 1000, 4),
        ...(scaler ? { loss_scale: scaler.scale, skipped_steps: state.skippedSteps } : {}),
      };
      metrics.append(rec);
      o.onEvent({ type: 'log', total: o.totalSteps, record: rec });
      state.window = { lossSum: 0, updates: 0, tokens: 0, ms: 0 };
    }
    const last = state.step === o.totalSteps;
    const evalNow = last || (o.evalEvery > 0 ? state.step % o.evalEvery === 0 : epoch > epochBefore);
    const best = evalNow ? await evaluate() : null;
    if (evalNow || last || state.step === stopAt || (o.saveEvery > 0 && state.step % o.saveEvery === 0)) await save(best);
  }
  o.onEvent({ type: 'done', step: state.step });
  return { step: state.step, stoppedEarly, lastEval, best: state.best, tokensPerSecond: state.elapsedMs > 0 ? (state.tokens / state.elapsedMs) * 1000 : 0 };
}
