/** Loads the N-API addon. The only module that touches it directly is kernel.ts (and tensor I/O). */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

import { LoadError, fromNativeError } from './errors.js';

/** A tensor's slot in the addon's handle table (a number: cheaper than an object to make and pass). */
export type NativeHandle = number & { readonly __brand?: 'NativeHandle' };

/** A tensor as the addon returns it. */
export interface NativeTensor {
  handle: NativeHandle;
  shape: number[];
  dtype: string;
  device: string;
}

export interface NativeOpInfo {
  name: string;
  cpu: boolean;
  cuda: boolean;
  doc: string;
  /** The attributes the op takes (ops.def); the addon reads only these. */
  attrs: string[];
}

export interface NativeBuildInfo {
  /** The library of the CPU's matrix products with its version, e.g. 'oneDNN 2.6.3'. */
  blas: string;
  /**
   * The SIMD target the CPU's vector runs dispatch to, chosen when the addon loads, as Google
   * Highway names it: 'AVX3' (AVX-512), 'AVX2', 'SSE4', 'SSSE3' or 'SCALAR' (one lane, no SIMD instructions).
   * The best the CPU has, capped by the environment variable KEXUE_SIMD (best, avx512, avx2, sse4,
   * scalar).
   */
  simd: string;
  /** Whether float16 conversions run in hardware (F16C, with the AVX2 and AVX-512 targets). */
  f16c: boolean;
  cuda: boolean;
  cudaArchs: string;
  cudaRuntimeVersion: number;
  /** Where matmul's cuBLASLt library was found (path and version), or why CUDA matmuls run kexue's own kernels. */
  cublasLt: string;
  threads: number;
  compiler: string;
  ops: NativeOpInfo[];
}

export interface NativeCudaDevice {
  index: number;
  name: string;
  computeCapability: string;
  totalMemory: number;
  multiprocessors: number;
}

/** The CUDA caching allocator's counters, summed over devices (see memory.ts). */
export interface NativeCudaMemoryStats {
  allocated: number;
  cached: number;
  peak: number;
  mallocCalls: number;
  cacheHits: number;
}

/** A fused group of a compiled program as the addon takes it (native/ops/fused_group/plan.h). */
export interface NativeGroupSpec {
  /** Six integers per instruction: op | fn << 8, dst, a, b, c, imm (float32 bits). */
  code: number[];
  inputs: number;
  /** The register of each output. */
  outputs: number[];
  shape: number[];
  dtype: string;
  /** The group's reduction (its Reduce instruction's): each element of `shape` reduces `rows` of the iteration shape. */
  reduce?: { op: 'sum' | 'mean' | 'max'; rows: number; shape: number[] };
}

/** One step of a compiled program: an op of the table (by name) or a fused group. */
export type NativeStepSpec =
  | { op: string; attrs: Record<string, unknown>; inputs: number[]; outputs: number }
  | { group: NativeGroupSpec; inputs: number[]; outputs: number };

/**
 * A compiled program (native/program/program.h): value ids number the inputs, then the constants,
 * then each step's outputs in order; -1 is an absent optional input.
 */
export interface NativeProgramSpec {
  inputs: number;
  constants: NativeHandle[];
  steps: NativeStepSpec[];
  outputs: number[];
}

/** New attributes for one op step of one program run: the step's index and its op's name. */
export interface NativeAttrPatch {
  step: number;
  op: string;
  attrs: Record<string, unknown>;
}

/** A native program object (an N-API External), freed by programDispose or when JS drops it. */
export type NativeProgram = object & { readonly __brand?: 'NativeProgram' };

export interface NativeAddon {
  fromData(data: ArrayBufferView, shape: number[], dtype: string, device: string): NativeTensor;
  toData(handle: NativeHandle): Float32Array | Uint16Array | Int32Array | Uint8Array;
  toDevice(handle: NativeHandle, device: string): NativeTensor;
  run(op: string, inputs: (NativeHandle | null)[], attrs: Record<string, unknown>): NativeTensor[];
  dispose(handle: NativeHandle): void;
  /** Builds a compiled program once (E_ARG for a malformed spec). */
  programCreate(spec: NativeProgramSpec): NativeProgram;
  /**
   * Runs a compiled program on its input handles: one addon call for the whole program. `patches`
   * give the op steps they name new attributes for this run (checked against the op `op` declares).
   * `stepNs` (one slot per step) receives each step's wall time in nanoseconds (the profiler's; CUDA
   * steps: their launch).
   */
  programRun(program: NativeProgram, inputs: readonly NativeHandle[], patches?: readonly NativeAttrPatch[], stepNs?: Float64Array): NativeTensor[];
  /** Frees a program and its constants now (a later programRun is E_ARG). */
  programDispose(program: NativeProgram): void;
  /**
   * The CPU's fused-group executors (ops/fused_group/executor.h): the code the emitter writes
   * ('interp' where it writes none: KEXUE_FUSION=interp, no Xbyak in the build, a CPU without
   * AVX2), the groups run so far by the emitter and by the interpreter, and the kernels emitted;
   * `cuda`: the CUDA executor's groups run from PTX and by the interpreter kernel, the PTX kernels
   * loaded, and the loads that failed with the last reason (ops/fused_group/group_device.h).
   */
  fusionStats(): {
    executor: 'avx512' | 'avx2' | 'interp';
    emitted: number;
    interpreted: number;
    kernels: number;
    cuda: { ptx: number; interpreted: number; kernels: number; loadFailures: number; lastFailure: string };
  };
  /**
   * A fused group run on CPU tensors by the CUDA interpreter kernel's element code
   * (ops/fused_group/group_eval.h), serially: each output's values as float32. For tests.
   */
  fusionInterpretReference(group: NativeGroupSpec, inputs: readonly NativeHandle[]): Float32Array[];
  /**
   * The PTX text of a fused group (ops/fused_group/ptx_writer.h), or null where the writer does not
   * support it; reads[k] says how input k is read. For tests (the CUDA executor loads it natively).
   */
  fusionPtx(group: NativeGroupSpec, reads: readonly ('float32' | 'uint8' | 'float32-row' | 'uint8-row' | 'scalar' | 'unused')[]): string | null;
  /** A zero-filled tensor made on its device (CUDA: a memset on the device's stream, no host copy). */
  zeros(shape: number[], dtype: string, device: string): NativeTensor;
  memoryStats(): {
    storages: number;
    bytes: number;
    peakBytes: number;
    cudaBytes: number;
    hostCachedBytes: number;
    cuda: NativeCudaMemoryStats;
  };
  /** Tells V8 that this much more (or, negative, less) native memory is held by JS objects. */
  adjustExternalMemory(bytes: number): number;
  releaseHostCache(): number;
  setHostCacheLimit(bytes: number): number;
  /** Frees the CUDA caching allocator's cached blocks (after the devices' queued work); returns the bytes. */
  releaseCudaCache(): number;
  /** Waits for all queued CUDA work; raises the error of a kernel that failed. */
  cudaSynchronize(): void;
  buildInfo(): NativeBuildInfo;
  cudaDevices(): NativeCudaDevice[];
  cudaUnavailableReason(): string;
  setNumThreads(n: number): void;
  /** kx.dist (dist.ts): joins the MPI job once (or, without MPI, makes a world of one); E_NO_MPI where Open MPI cannot be opened. */
  distInit(withMpi: boolean): { rank: number; size: number; library: string };
  /** Queues an in-place all-reduce in buckets; returns its ticket for distWait. */
  distAllReduce(handles: NativeHandle[], op: 'sum' | 'mean', bucketBytes: number): number;
  /** Queues an in-place broadcast from `root` in buckets; returns its ticket. */
  distBroadcast(handles: NativeHandle[], root: number, bucketBytes: number): number;
  distBarrier(): number;
  /** Waits for a ticket (E_DIST after timeoutMs; negative: no limit); returns the communication thread's ms on it. */
  distWait(ticket: number, timeoutMs: number): number;
  /** MPI_Finalize, unless a collective failed. */
  distFinalize(): void;
}

/**
 * The addon as loaded: calls that make tensors write each one's handle, dtype, device and shape into
 * the info buffer passed last (cheaper than an object per tensor made in C++); `native` below reads
 * them back.
 */
interface RawAddon extends Omit<NativeAddon, 'fromData' | 'toDevice' | 'run' | 'zeros' | 'programCreate' | 'programRun'> {
  fromData(data: ArrayBufferView, shape: number[], dtype: string, device: string, info: Float64Array): void;
  toDevice(handle: NativeHandle, device: string, info: Float64Array): void;
  /**
   * `op` is the op's position in buildInfo().ops; the `n` input handles are info's first numbers (0
   * for an absent input). Returns the number of outputs.
   */
  run(op: number, n: number, attrs: Record<string, unknown> | undefined, info: Float64Array): number;
  zeros(shape: number[], dtype: string, device: string, info: Float64Array): void;
  /** The spec with each op step's `op` as its position in buildInfo().ops. */
  programCreate(spec: unknown): NativeProgram;
  /** As run: the n input handles are info's first numbers; returns the number of outputs. */
  programRun(program: NativeProgram, n: number, info: Float64Array, patches?: { step: number; attrs: Record<string, unknown> | undefined }[], stepNs?: Float64Array): number;
  /** DType names by the native enum's value. */
  dtypeNames: string[];
}

function load(): RawAddon {
  const require = createRequire(import.meta.url);
  const here = path.dirname(fileURLToPath(import.meta.url));
  const file = process.env.KEXUE_ADDON ?? path.join(here, '..', 'build', 'Release', 'kexue_core.node');
  // OpenBLAS (kx.linalg's LAPACK) starts its worker threads as the addon loads, one per core but
  // one, each polling ~0.15 s before it sleeps; kexue runs OpenBLAS on the calling thread
  // (ops/linalg/linalg.cpp), so it is told to start none, unless the user set the variable. It is the
  // process's environment: removed again once loaded, so child processes do not inherit it.
  const openblasThreads = process.env.OPENBLAS_NUM_THREADS;
  if (openblasThreads === undefined) process.env.OPENBLAS_NUM_THREADS = '1';
  try {
    return require(file) as RawAddon;
  } catch (err) {
    // the addon's own refusal (a bad KEXUE_SIMD: E_ARG) keeps its code
    if (/^E_[A-Z_]+$/.test(String((err as { code?: unknown }).code))) throw fromNativeError(err);
    throw new LoadError(
      `could not load kexue's native addon from ${file}: ${(err as Error).message}. ` +
        'Build it with `pnpm -F @kexue/core-cuda run build:native` (needs cmake, g++, libhwy-dev, libdnnl-dev and libopenblas-dev: scripts/setup.sh installs them).',
      { cause: err },
    );
  } finally {
    if (openblasThreads === undefined) delete process.env.OPENBLAS_NUM_THREADS;
  }
}

const raw = load();
/**
 * Per returned tensor: handle, dtype, device type (0 cpu, 1 cuda), device index, rank, dims...
 * (module.cpp); run's input handles on the way in.
 */
const info = new Float64Array(4096);
const cudaNames: string[] = [];

/** The `count` tensors a call just returned, read from the info buffer in order. */
function described(count: number): NativeTensor[] {
  const out = new Array<NativeTensor>(count);
  let at = 0;
  for (let t = 0; t < count; t++) {
    const dtype = raw.dtypeNames[info[at + 1]!]!;
    const index = info[at + 3]!;
    const device = info[at + 2] === 0 ? 'cpu' : (cudaNames[index] ??= `cuda:${index}`);
    const rank = info[at + 4]!;
    const shape = new Array<number>(rank);
    for (let i = 0; i < rank; i++) shape[i] = info[at + 5 + i]!;
    out[t] = { handle: info[at]!, shape, dtype, device };
    at += 5 + rank;
  }
  return out;
}

/** The one tensor a call just returned. */
function describedOne(): NativeTensor {
  return described(1)[0]!;
}

export const native: NativeAddon = {
  ...raw,
  fromData: (data, shape, dtype, device) => (raw.fromData(data, shape, dtype, device, info), describedOne()),
  toDevice: (handle, device) => (raw.toDevice(handle, device, info), describedOne()),
  run: (op, inputs, attrs) => {
    const def = opDef(op);
    if (inputs.length > info.length) throw Object.assign(new Error(`${op}: too many inputs (${inputs.length})`), { code: 'E_ARG' });
    for (let i = 0; i < inputs.length; i++) info[i] = inputs[i] ?? 0;
    return described(raw.run(def.index, inputs.length, checkedAttrs(def, attrs), info));
  },
  zeros: (shape, dtype, device) => (raw.zeros(shape, dtype, device, info), describedOne()),
  programCreate: (spec) =>
    raw.programCreate({
      ...spec,
      steps: spec.steps.map((s) => ('op' in s ? { ...s, op: opDef(s.op).index, attrs: checkedAttrs(opDef(s.op), s.attrs) } : s)),
    }),
  programRun: (program, inputs, patches, stepNs) => {
    if (inputs.length > info.length) throw Object.assign(new Error(`compiled function: too many inputs (${inputs.length})`), { code: 'E_ARG' });
    const checked = patches?.map((p) => ({ step: p.step, attrs: checkedAttrs(opDef(p.op), p.attrs) }));
    for (let i = 0; i < inputs.length; i++) info[i] = inputs[i]!;
    return described(raw.programRun(program, inputs.length, info, checked, stepNs));
  },
};

/** An op of the addon's table: its position (how run names it) and its declared attributes. */
interface OpDef {
  name: string;
  index: number;
  attrs: Set<string>;
}
let opDefs: Map<string, OpDef> | null = null;

/** The op named `op`; E_ARG for a name the addon does not have. */
function opDef(op: string): OpDef {
  opDefs ??= new Map(raw.buildInfo().ops.map((o, index) => [o.name, { name: o.name, index, attrs: new Set(o.attrs) }]));
  const def = opDefs.get(op);
  if (!def) throw Object.assign(new Error(`unknown op '${op}'`), { code: 'E_ARG' });
  return def;
}

/**
 * The attributes to pass: E_ARG for one the op does not declare (the addon reads only declared
 * names), and undefined when none is set, which the addon skips without looking at the object.
 */
function checkedAttrs(def: OpDef, attrs: Record<string, unknown>): Record<string, unknown> | undefined {
  let any = false;
  for (const name in attrs) {
    if (attrs[name] === undefined) continue;
    if (!def.attrs.has(name)) throw Object.assign(new Error(`${def.name}: unknown attribute '${name}'`), { code: 'E_ARG' });
    any = true;
  }
  return any ? attrs : undefined;
}
