/** Training-run machinery: run directories, metrics.jsonl, atomic checkpoints, the training loop, its events. */
export {
  CHECKPOINTS_DIR,
  CONFIG_FILE,
  INDEX_FILE,
  LOCK_FILE,
  METRICS_FILE,
  assertRunDir,
  checkNewRunDir,
  createRunDir,
  lockRunDir,
  removeUnfinishedRun,
  timestampedRunDir,
  type LockOwner,
  type RunLock,
} from './run_dir.js';
export { MetricsLog, readMetrics, type MetricsRecord } from './metrics.js';
export {
  CHECKSUMS_FILE,
  MODEL_FILE,
  OPTIMIZER_FILE,
  TRAINER_FILE,
  checkArchitecture,
  checkpointDir,
  loadWeights,
  buildFromCheckpoint,
  readCheckpointIndex,
  readChecksums,
  readModelHeader,
  readTrainerState,
  sha256File,
  verifyCheckpoint,
  verifyCheckpointFile,
  writeCheckpoint,
  type Architecture,
  type CheckpointContent,
  type CheckpointIndex,
  type CheckpointRef,
  type ChecksumManifest,
  type TrainerState,
} from './checkpoint.js';
export { readJson, writeJsonAtomic, writeTextAtomic } from './files.js';
export { ignoreEvents, type DoneEvent, type EvalEvent, type LogEvent, type NoticeEvent, type ResumeEvent, type StartEvent, type StepEvent, type TrainEvent, type TrainObserver } from './events.js';
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
export { EventFileWriter, TFEVENTS_FILE_VERSION, TFEVENTS_PREFIX, encodeEvent, maskedCrc32c, tensorboardObserver, tfRecord, type TensorBoardObserver, type TfEvent } from './tensorboard.js';
export { COMPILE_PAD_MULTIPLE, CompiledUpdate, paddedLength, scaleGradients, sumGradients, type BatchTensors } from './compiled_step.js';
