/** Training-run machinery: run directories, metrics.jsonl, atomic checkpoints, the training loop, its events. */
export { CHECKPOINTS_DIR, CONFIG_FILE, INDEX_FILE, METRICS_FILE, assertRunDir, createRunDir, timestampedRunDir } from './run_dir.js';
export { MetricsLog, readMetrics, type MetricsRecord } from './metrics.js';
export {
  MODEL_FILE,
  OPTIMIZER_FILE,
  TRAINER_FILE,
  checkArchitecture,
  checkpointDir,
  loadWeights,
  readCheckpointIndex,
  readModelHeader,
  readTrainerState,
  writeCheckpoint,
  type Architecture,
  type CheckpointContent,
  type CheckpointIndex,
  type CheckpointRef,
  type TrainerState,
} from './checkpoint.js';
export { readJson, writeJsonAtomic, writeTextAtomic } from './files.js';
export { ignoreEvents, type DoneEvent, type EvalEvent, type LogEvent, type ResumeEvent, type StartEvent, type StepEvent, type TrainEvent, type TrainObserver } from './events.js';
export { trainLoop, type TrainLoopOptions, type TrainSummary, type TrainTask } from './trainer.js';
export {
  PrecisionPolicy,
  PRECISION_NAMES,
  parseLossScale,
  parsePrecision,
  type ComputeDType,
  type LossScaleSetting,
  type PrecisionName,
  type PrecisionOptions,
} from './precision.js';
