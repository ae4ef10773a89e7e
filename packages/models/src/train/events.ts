/**
 * What a training run reports while it runs: typed events, not text. The trainer and the tasks
 * send them to an observer; the CLI renders them (a bar with elapsed time and ETA on a terminal,
 * plain lines elsewhere), and a program may log, plot or ignore them.
 */
import type { MetricsRecord } from './metrics.js';

/** The run is about to train (after its directory, config and model are ready). */
export interface StartEvent {
  type: 'start';
  task: string;
  runDir: string;
  device: string;
  /** 'bf16 (loss scale dynamic)' and the like; null for float32. */
  precision: string | null;
  /** The model, in a few words: 'roformer 2x128 + egp'. */
  model: string;
  parameters: number;
  /** Optimizer updates in all. */
  updates: number;
  /** Training and held-out examples, and what they are ('records', 'texts'). */
  data: { train: number; dev: number; unit: string };
  /** Further facts of the task: '10 types'. */
  extra?: string;
}

/** A resumed run continues from its last checkpoint. */
export interface ResumeEvent {
  type: 'resume';
  step: number;
  epoch: number;
  /** The record within the epoch. */
  index: number;
  /** Metrics records written after that checkpoint by the interrupted process, now dropped. */
  droppedRecords: number;
}

/** After every optimizer update. */
export interface StepEvent {
  type: 'step';
  step: number;
  total: number;
  epoch: number;
  /** The mean loss of the updates since the last logging step. */
  loss: number;
  tokensPerSecond: number;
  /** Wall time since this process started the loop, evaluations included. */
  elapsedMs: number;
  /** The remaining updates at this process's mean time per update, evaluations excluded. */
  etaMs: number;
}

/** A logging step: the record written to metrics.jsonl (loss, lr, grad_norm, tokens_per_s, …). */
export interface LogEvent {
  type: 'log';
  total: number;
  record: MetricsRecord;
}

/** An evaluation on the held-out data. */
export interface EvalEvent {
  type: 'eval';
  step: number;
  metrics: Record<string, number>;
  seconds: number;
  /** It is the best so far by the task's main metric (its checkpoint becomes the best). */
  best: boolean;
}

/** Something the person running it should know that is not an error (a stale lock taken over). */
export interface NoticeEvent {
  type: 'notice';
  message: string;
}

/** The loop is over (the run finished, or stopped at train.stop_at). */
export interface DoneEvent {
  type: 'done';
  step: number;
}

export type TrainEvent = StartEvent | NoticeEvent | ResumeEvent | StepEvent | LogEvent | EvalEvent | DoneEvent;

/** Receives a run's events. */
export type TrainObserver = (event: TrainEvent) => void;

/** An observer that ignores everything. */
export const ignoreEvents: TrainObserver = () => {};
