/**
 * @kexue/optimizers: Tiger (exactly as ALGORITHMS.md §1), Lion, AdamW and SGD over fused native
 * updates, learning-rate schedules, global-norm clipping, parameter groups and loss scaling.
 *
 *   import * as kx from '@kexue/core-cuda';
 *   import { Tiger } from '@kexue/optimizers';
 *   const opt = new Tiger({ learningRate: 1.76e-3, gradAccumSteps: 4, schedule: { 40000: 1 } });
 *   const { value, grads } = kx.valueAndGrad(loss, params);
 *   opt.step(params, grads);   // params updated in place
 */
export { Optimizer, type NamedTensors, type ParamGroup, type CommonOptions, type OptionsOf, type StepOptions, type StepResult, type OptimizerState, type OptimizerMeta, type UpdateNumbers, type ParamUpdate, type ReplayUpdate, type ReplayCall } from './optimizer.js';
export type { UpdateVerdict, DeviceVerdict } from './verdicts.js';
export { Tiger, type TigerOptions } from './tiger.js';
export { tigerParamClass, hfParamClass, TIGER_PARAM_CLASSES, type TigerParamClass, type ParamClassOption } from './param-class.js';
export { Lion, LION_V2_DEFAULTS, LION_PAPER_DEFAULTS, type LionOptions } from './lion.js';
export { AdamW, type AdamWOptions } from './adamw.js';
export { SGD, type SGDOptions } from './sgd.js';
export { piecewiseLinear, warmupLinear, warmupCosine, type Schedule, type ScheduleFn, type PiecewiseLinearOptions, type WarmupDecayOptions } from './schedules.js';
export { LossScaler, type LossScalerOptions, type LossScalerState, type ScaledStepResult } from './loss-scaler.js';
export { saveOptimizerState, loadOptimizerState } from './checkpoint.js';
export { globalNorm } from '@kexue/core-cuda';
