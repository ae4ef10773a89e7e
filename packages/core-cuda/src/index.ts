/**
 * @kexue/core-cuda: tensors on CPU (oneDNN products + kexue's kernels) and CUDA, ops with gradients,
 * tape autograd and deterministic memory.
 *
 *   import * as kx from '@kexue/core-cuda';
 *   const x = kx.tensor(new Float32Array([1, 2, 3, 4]), [2, 2]);
 *   const { value, grads } = kx.valueAndGrad(([w]) => kx.sum(kx.matmul(x, w)), [x]);
 */
import './tensor_methods.js'; // attaches Tensor's op methods (t.cast, t.reshape)
export { Tensor, type TensorLike } from './tensor.js';
export { DTYPES, isFloating, bytesPerElement, type DType, type RawData } from './dtype.js';
export { tensor, scalar, full, zeros, ones, fullLike, type TensorOptions } from './creation.js';
export { cuda, devices, buildInfo, resolveDevice, setNumThreads, type Device, type DeviceInfo } from './device.js';
export * from './errors.js';
export { tidy, keep, dispose, memory, releaseHostCache, setHostCacheLimit, type CudaMemoryInfo, type MemoryInfo, type TensorContainer } from './memory.js';
export { valueAndGrad, grad, checkGrad, isRecordingGradients, type Params, type GradsOf, type CheckGradOptions, type CheckGradResult, type ValueAndGradOptions } from './autograd.js';
export { philox4x32, PhiloxStream } from './random.js';
export { registerGradient, type Attrs, type GradientRule, type OpRecord } from './tape.js';
export { runKernel } from './kernel.js';
export { profiler, type ProfileOptions, type ProfileRow } from './profile.js';
export { dynamicAttrs, guardTrace, replayOutput, tracing, untraced } from './trace_hook.js';
export { compile, type CompileOptions, type CompiledFunction, type CompiledPlan, type CompileStats, type PlannedGroup } from './compile/index.js';
export * from './ops/cast.js';
export * from './ops/shape.js';
export * from './ops/broadcast.js';
export * from './ops/elementwise.js';
export * from './ops/reduce.js';
export * from './ops/softmax.js';
export * from './ops/cross_entropy.js';
export * from './ops/norm.js';
export * from './ops/fused.js';
export * from './ops/embedding.js';
export * from './ops/topk.js';
export * from './ops/rope.js';
export * from './ops/rope_general.js';
export * from './ops/attention.js';
export * from './ops/matmul.js';
export * from './ops/random.js';
export * from './ops/optim.js';
export * from './ops/global_pointer.js';
export * as io from './io/index.js';
export * as linalg from './ops/linalg.js';
export * as vmf from './ops/vmf.js';
export { logGamma, logBesselI, logBesselIve, besselRatio } from './bessel.js';
export * as dist from './dist.js';
