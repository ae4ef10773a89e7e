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
 * Data-parallel (`world`, the processes of an MPI job): every process walks the same global batches
 * and computes the gradient of its contiguous share, weighted by the share's part of the batch's
 * loss weight, so that the sum over processes (one all-reduce per update, before clipping and the
 * optimizer) is the gradient of the whole batch; parameters start from rank 0's, every process then
 * makes the same updates, and rank 0 alone writes metrics and checkpoints.
 * Compiled (`compile`): the micro-steps, their sum and the update run as kx.compile'd programs
 * (compiled_step.ts) over padded batches (`padTo`, COMPILE_PAD_MULTIPLE by default); the same ops,
 * batches, dropout masks and counters as an eager run with the same padding, so the same run within
 * the fused groups' rounding (DESIGN.md, "Compiled training steps"). It needs a single process and
 * no loss scaler, which read values on the host inside the update.
 */
import path from 'node:path';

import { add, ArgumentError, dist, dispose, DivergedError, globalNorm, keep, mul, tensor, valueAndGrad, zeros, type Philox, type Tensor } from '@kexue/core-cuda';
import type { Optimizer, StepResult } from '@kexue/optimizers';

import type { Batch, Dataset } from '../data/dataset.js';
import type { Module } from '../nn/module.js';
import { readCheckpointIndex, writeCheckpoint, type Architecture, type TrainerState } from './checkpoint.js';
import { COMPILE_PAD_MULTIPLE, CompiledUpdate, scaleGradients, sumGradients, type BatchTensors } from './compiled_step.js';
import { GradientReducer } from './gradient_reducer.js';
import { MetricsLog } from './metrics.js';
import { PrecisionPolicy } from './precision.js';
import type { TrainObserver } from './events.js';

/** What a task gives the trainer. */
export interface TrainTask<R, I extends BatchTensors = BatchTensors> {
  /** 'ner', 'mlm', … (recorded in checkpoints). */
  readonly name: string;
  readonly model: Module;
  /** The encoded training records. */
  readonly data: Dataset<R>;
  /**
   * A micro-batch's tensors on the model's device, every length and count padded up to a multiple of
   * `padTo` (1: the batch's longest). Everything drawn per batch on the host (masking) is in them.
   */
  inputs(batch: Batch<R>, padTo: number): I;
  /** The loss (a scalar) of a micro-batch's tensors with the model's live parameters: tensor code only, no host reads. */
  lossOf(inputs: I): Tensor;
  /** Real tokens in a batch (for tokens/s). */
  tokens(records: R[]): number;
  /**
   * What the loss of a batch is a mean over (its examples by default; a task whose loss averages
   * over tokens or chosen positions says how many a batch has). Data-parallel runs weight each
   * process's share by it, so that their sum is the loss of the whole batch.
   */
  lossWeight?(batch: Batch<R>): number;
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
  /**
   * Updates in a row whose loss (or, without a loss scaler, gradient norm) is not finite before
   * the run stops with E_DIVERGED; default 10. Tiger's guard and the loss scaler still handle
   * each such update by their rules; this bounds how long a run goes on diverging.
   */
  maxNonFinite?: number;
  /** When aborted, the loop stops after the current update with a checkpoint, as at stopAt. */
  stop?: AbortSignal;
  /** This process's place in a data-parallel job (kx.dist.init()); absent: a single process. */
  world?: { rank: number; size: number };
  /** Run each update as kx.compile'd programs (a single process without a loss scaler only). */
  compile?: boolean;
  /** Batches' lengths and counts are padded up to a multiple of this (TrainTask.inputs); default 1 (none), COMPILE_PAD_MULTIPLE when compiled. */
  padTo?: number;
}

export interface TrainSummary {
  step: number;
  /** Stopped before the last update: at train.stop_at, or asked to (interrupted). */
  stoppedEarly: boolean;
  /** Stopped because `stop` was aborted (Ctrl-C). */
  interrupted: boolean;
  /** Training time, evaluations excluded, over every process of the run (ms). */
  elapsedMs: number;
  lastEval: Record<string, number> | null;
  best: TrainerState['best'];
  tokensPerSecond: number;
}

function freshState(): TrainerState {
  return { step: 0, position: { epoch: 0, index: 0 }, dropoutOffset: 0, tokens: 0, elapsedMs: 0, window: { lossSum: 0, updates: 0, tokens: 0, ms: 0 }, best: null };
}

const round = (x: number, digits: number) => Number(x.toPrecision(digits));

/**
 * The all-reduce time since `from` (a kx.dist.stats()): `allreduce_ms`, the communication thread's
 * time on it, and `allreduce_hidden`, the share of that time the backward pass hid (not waited for).
 */
function commWindow(from: ReturnType<typeof dist.stats>): { allreduce_ms: number; allreduce_hidden: number } {
  const now = dist.stats();
  const busy = now.busyMs - from.busyMs;
  const waited = now.waitedMs - from.waitedMs;
  return { allreduce_ms: round(busy, 4), allreduce_hidden: busy > 0 ? round(Math.max(0, Math.min(1, 1 - waited / busy)), 3) : 0 };
}

/** Process `rank`'s contiguous share of a global batch (of `size` processes): near-equal parts. */
function shareOf<R>(batch: Batch<R>, rank: number, size: number): Batch<R> {
  const n = batch.records.length;
  const start = Math.floor((rank * n) / size);
  const end = Math.floor(((rank + 1) * n) / size);
  return { records: batch.records.slice(start, end), indices: batch.indices.slice(start, end), epoch: batch.epoch, index: batch.index + start };
}

/** Runs the loop until totalSteps (or stopAt) updates are done. */
export async function trainLoop<R, I extends BatchTensors>(task: TrainTask<R, I>, o: TrainLoopOptions): Promise<TrainSummary> {
  const state: TrainerState = o.resume ? structuredClone(o.resume) : freshState();
  if (o.dropout.offset !== state.dropoutOffset) throw new Error(`trainLoop: the dropout generator is at ${o.dropout.offset}, the state at ${state.dropoutOffset}`);
  const world = o.world && o.world.size > 1 ? o.world : null;
  /** Whether this process writes the run's files (the only one, or rank 0). */
  const lead = !world || world.rank === 0;
  const metrics = new MetricsLog(`${o.runDir}/metrics.jsonl`);
  const record = (rec: Parameters<MetricsLog['append']>[0]) => {
    if (lead) metrics.append(rec);
  };
  const weightOf = (batch: Batch<R>) => task.lossWeight?.(batch) ?? batch.records.length;
  if (o.resume) {
    const dropped = lead ? await metrics.truncateAfter(state.step) : 0;
    o.onEvent({ type: 'resume', step: state.step, epoch: state.position.epoch, index: state.position.index, droppedRecords: dropped });
  }
  const loader = task.data.batches({ batchSize: o.batchSize, shuffle: true, seed: o.seed, position: state.position });
  const params = task.model.namedParameters();
  const names = Object.keys(params);
  // every process starts from rank 0's parameters (a fresh run's seeded ones, or the checkpoint's)
  const tensors = Object.values(params);
  if (world) dist.broadcast(tensors, 0);
  const reducer = world ? new GradientReducer(tensors) : null;
  /** The all-reduce time of the log window so far, and how much of it was hidden behind compute. */
  let commFrom = world ? dist.stats() : null;
  const policy = o.precision ?? new PrecisionPolicy();
  const scaler = policy.createScaler();
  if (o.compile && (scaler || world)) {
    throw new ArgumentError(`trainLoop: a compiled update cannot ${scaler ? 'use a loss scaler' : 'run data-parallel'}: it reads values on the host inside the update`);
  }
  const lossOf = (inputs: I) => policy.forward(task.model, () => task.lossOf(inputs));
  const padTo = o.padTo ?? (o.compile ? COMPILE_PAD_MULTIPLE : 1);
  const compiled = o.compile ? new CompiledUpdate<I>(params, o.optimizer, o.gradAccum, lossOf) : null;
  if (scaler) {
    if (state.lossScaler) scaler.loadState(state.lossScaler);
    state.skippedSteps ??= 0;
  }
  task.model.train();
  let lastEval: Record<string, number> | null = null;
  const maxNonFinite = o.maxNonFinite ?? 10;
  /** Updates in a row with a non-finite loss (or gradient norm), and where that began. */
  let streak = 0;
  let streakFrom = 0;
  /** The step of the last checkpoint (the resume point's, on resume). */
  let savedStep = o.resume ? state.step : -1;
  const lastGood = () => {
    if (savedStep < 0) return 'no checkpoint was written';
    const last = readCheckpointIndex(o.runDir).last;
    return `the last good checkpoint is ${path.join(o.runDir, last.dir)} (step ${last.step})`;
  };

  /** Writes a checkpoint, unless the last update diverged; weights that are not finite stop the run. */
  const save = async (best: { metric: string; value: number } | null) => {
    if (streak > 0) return;
    if (!Number.isFinite(globalNorm(tensors))) throw new DivergedError(`training diverged: the weights are not finite after step ${state.step}; ${lastGood()}`);
    state.position = loader.position;
    state.dropoutOffset = o.dropout.offset;
    if (scaler) state.lossScaler = scaler.state();
    if (lead) await writeCheckpoint(o.runDir, { task: task.name, arch: o.arch, weights: params, optimizer: o.optimizer, state, config: o.config, files: o.files }, best);
    savedStep = state.step;
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
    record({ kind: 'eval', step: state.step, epoch: loader.position.epoch, ...result, eval_s: seconds });
    const main = task.mainMetric;
    const value = main ? result[main.name] : undefined;
    // a non-finite metric (a diverged model) is never the best
    const better =
      main !== undefined && value !== undefined && Number.isFinite(value) && streak === 0 && (!state.best || (main.higherIsBetter ? value > state.best.value : value < state.best.value));
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
  let interrupted = false;
  /** Data-parallel: a process asked to stop (the flag travels with the loss), so all stop at this update. */
  let stopAgreed = false;
  // the compiled programs are freed however the loop ends (a thrown error included)
  try {
    while (state.step < o.totalSteps) {
      if (state.step >= stopAt) {
        stoppedEarly = true;
        break;
      }
      // let signal handlers run (a Ctrl-C handler aborts o.stop): the update itself is synchronous
      await new Promise((resolve) => setImmediate(resolve));
      if (world ? stopAgreed : o.stop?.aborted) {
        stoppedEarly = interrupted = true;
        if (savedStep !== state.step) await save(null);
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
        // this process's share, and its part of the batch's loss (1 alone)
        const part = world ? shareOf(batch, world.rank, world.size) : batch;
        const whole = world ? weightOf(batch) : 0;
        const share = !world ? 1 : whole > 0 ? weightOf(part) / whole : part.records.length / batch.records.length;
        // data-parallel: the last micro-batch's gradients, summed with the earlier ones into tensors of
        // their own, start their all-reduce as the backward pass completes them
        const prev = acc;
        const onGradient =
          reducer && micro === o.gradAccum - 1 ? (i: number, g: Tensor) => reducer.ready(i, keep(prev ? add(prev[names[i]!]!, g) : mul(g, 1))) : undefined;
        let grads: Record<string, Tensor>;
        if (compiled) {
          const inputs = task.inputs(part, padTo);
          let out: { value: Tensor; grads: Record<string, Tensor> };
          try {
            out = compiled.micro(inputs);
          } finally {
            dispose(Object.values(inputs));
          }
          grads = out.grads;
          lossSum += out.value.item();
          out.value.dispose();
        } else if (share > 0) {
          // The scale seeds the backward pass (the value stays unscaled), so crossEntropy's forward can
          // compute the scaled gradient itself.
          const out = valueAndGrad(() => lossOf(task.inputs(part, padTo)), params, {
            outputGradient: scale * share,
            ...(onGradient ? { onGradient } : {}),
          });
          grads = out.grads;
          lossSum += out.value.item() * share;
          out.value.dispose();
        } else {
          // a share with nothing to learn from (a batch smaller than the job) still takes part
          grads = Object.fromEntries(Object.entries(params).map(([k, p]) => [k, zeros(p.shape, { device: p.device })]));
          if (onGradient) names.forEach((k, i) => onGradient(i, grads[k]!));
        }
        if (onGradient) {
          // the reducer holds the sums now
          dispose([Object.values(grads), prev ? Object.values(prev) : []]);
          acc = null;
        } else if (acc === null) acc = grads;
        else {
          const prev: Record<string, Tensor> = acc;
          acc = compiled ? compiled.sum(prev, grads) : sumGradients(prev, grads);
          dispose([Object.values(prev), Object.values(grads)]);
        }
      }
      let grads: Record<string, Tensor>;
      if (reducer) {
        // the sum over processes of their weighted shares: the whole batch's gradient and loss, and
        // whether any process was asked to stop (then all stop after this update, with a checkpoint)
        const extra = tensor([lossSum, o.stop?.aborted ? 1 : 0], [2], { device: tensors[0]!.device });
        const summed = reducer.finish(extra);
        grads = Object.fromEntries(names.map((k, i) => [k, summed[i]!]));
        const [reducedLoss, stops] = extra.dataSync();
        lossSum = reducedLoss!;
        stopAgreed = stops! > 0;
        extra.dispose();
      } else grads = acc!;
      let gradNorm: number;
      /** The schedule's multiplier of this update's learning rate (a skipped update reports the rate the next one will use). */
      let multiplier: number;
      if (compiled) {
        const norm = compiled.apply(grads);
        dispose(Object.values(grads));
        gradNorm = norm.item();
        norm.dispose();
        multiplier = o.optimizer.scheduleMultiplier(o.optimizer.iterations - 1);
      } else {
        if (o.gradAccum > 1) {
          const sum = grads;
          grads = scaleGradients(sum, 1 / o.gradAccum);
          dispose(Object.values(sum));
        }
        // the norm of the scaled gradients; logged unscaled
        const scaledNorm = globalNorm(Object.values(grads));
        gradNorm = scaledNorm / scale;
        let result: StepResult | null;
        if (scaler) {
          result = scaler.step(o.optimizer, params, grads, { gradNorm: scaledNorm }).result;
          if (!result) state.skippedSteps! += 1;
        } else {
          result = o.optimizer.step(params, grads, { gradNorm });
        }
        dispose(Object.values(grads));
        multiplier = result ? result.scheduleMultiplier : o.optimizer.scheduleMultiplier();
      }
      state.step++;
      const loss = lossSum / o.gradAccum;
      if (Number.isFinite(loss) && (scaler !== null || Number.isFinite(gradNorm))) streak = 0;
      else if (++streak === 1) streakFrom = state.step;
      if (streak >= maxNonFinite) {
        throw new DivergedError(
          `training diverged: the loss${scaler ? '' : ' or gradient norm'} was not finite for ${streak} updates in a row (steps ${streakFrom}–${state.step}); ` +
            `${lastGood()}. Try a lower optim.lr or clipping (optim.clip_norm); train.max_nonfinite sets how many such updates a run tolerates`,
        );
      }
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
          lr: o.optimizer.learningRate * multiplier,
          grad_norm: gradNorm,
          tokens_per_s: round((w.tokens / w.ms) * 1000, 4),
          elapsed_s: round(state.elapsedMs / 1000, 4),
          ...(scaler ? { loss_scale: scaler.scale, skipped_steps: state.skippedSteps } : {}),
          ...(commFrom ? commWindow(commFrom) : {}),
          // programs traced so far (a trace after the first updates means a new padded batch shape) and replayed
          ...(compiled ? { compile_traces: compiled.stats.traces, compile_replays: compiled.stats.replays } : {}),
        };
        if (commFrom) commFrom = dist.stats();
        record(rec);
        o.onEvent({ type: 'log', total: o.totalSteps, record: rec });
        state.window = { lossSum: 0, updates: 0, tokens: 0, ms: 0 };
      }
      const last = state.step === o.totalSteps;
      const evalNow = last || (o.evalEvery > 0 ? state.step % o.evalEvery === 0 : epoch > epochBefore);
      const best = evalNow ? await evaluate() : null;
      if (evalNow || last || state.step === stopAt || (o.saveEvery > 0 && state.step % o.saveEvery === 0)) await save(best);
    }
    if (streak > 0) throw new DivergedError(`training diverged: its last ${streak} updates (steps ${streakFrom}–${state.step}) had a non-finite loss; ${lastGood()}`);
  } finally {
    compiled?.clear();
  }
  o.onEvent({ type: 'done', step: state.step });
  return {
    step: state.step,
    stoppedEarly,
    interrupted,
    elapsedMs: state.elapsedMs,
    lastEval,
    best: state.best,
    tokensPerSecond: state.elapsedMs > 0 ? (state.tokens / state.elapsedMs) * 1000 : 0,
  };
}
