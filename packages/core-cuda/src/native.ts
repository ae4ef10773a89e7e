/** Loads the N-API addon. The only module that touches it directly is kernel.ts (and tensor I/O). */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

import { LoadError } from './errors.js';

export type NativeHandle = object & { readonly __brand?: 'NativeHandle' };

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
  blas: string;
  simd: string;
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

export interface NativeAddon {
  fromData(data: ArrayBufferView, shape: number[], dtype: string, device: string): NativeTensor;
  toData(handle: NativeHandle): Float32Array | Uint16Array | Int32Array | Uint8Array;
  toDevice(handle: NativeHandle, device: string): NativeTensor;
  run(op: string, inputs: (NativeHandle | null)[], attrs: Record<string, unknown>): NativeTensor[];
  dispose(handle: NativeHandle): void;
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
}

/**
 * The addon as loaded: calls that make tensors return bare handles and write each tensor's dtype,
 * device and shape into the info buffer passed last (cheaper than an object per tensor made in
 * C++); `native` below reads them back.
 */
interface RawAddon extends Omit<NativeAddon, 'fromData' | 'toDevice' | 'run' | 'zeros'> {
  fromData(data: ArrayBufferView, shape: number[], dtype: string, device: string, info: Float64Array): NativeHandle;
  toDevice(handle: NativeHandle, device: string, info: Float64Array): NativeHandle;
  run(op: string, inputs: (NativeHandle | null)[], attrs: Record<string, unknown> | undefined, info: Float64Array): NativeHandle[];
  zeros(shape: number[], dtype: string, device: string, info: Float64Array): NativeHandle;
  /** DType names by the native enum's value. */
  dtypeNames: string[];
}

function load(): RawAddon {
  const require = createRequire(import.meta.url);
  const here = path.dirname(fileURLToPath(import.meta.url));
  const file = process.env.KEXUE_ADDON ?? path.join(here, '..', 'build', 'Release', 'kexue_core.node');
  try {
    return require(file) as RawAddon;
  } catch (err) {
    throw new LoadError(
      `could not load kexue's native addon from ${file}: ${(err as Error).message}. ` +
        'Build it with `pnpm -F @kexue/core-cuda run build:native` (needs cmake, g++ and libopenblas-dev).',
      { cause: err },
    );
  }
}

const raw = load();
/** Per returned tensor: dtype, device type (0 cpu, 1 cuda), device index, rank, dims... (module.cpp). */
const info = new Float64Array(4096);
const cudaNames: string[] = [];

/** The tensors a call just returned, read from the info buffer in order. */
function described(handles: NativeHandle[]): NativeTensor[] {
  let at = 0;
  return handles.map((handle) => {
    const dtype = raw.dtypeNames[info[at]!]!;
    const index = info[at + 2]!;
    const device = info[at + 1] === 0 ? 'cpu' : (cudaNames[index] ??= `cuda:${index}`);
    const rank = info[at + 3]!;
    const shape = new Array<number>(rank);
    for (let i = 0; i < rank; i++) shape[i] = info[at + 4 + i]!;
    at += 4 + rank;
    return { handle, shape, dtype, device };
  });
}

export const native: NativeAddon = {
  ...raw,
  fromData: (data, shape, dtype, device) => described([raw.fromData(data, shape, dtype, device, info)])[0]!,
  toDevice: (handle, device) => described([raw.toDevice(handle, device, info)])[0]!,
  run: (op, inputs, attrs) => described(raw.run(op, inputs, checkedAttrs(op, attrs), info)),
  zeros: (shape, dtype, device) => described([raw.zeros(shape, dtype, device, info)])[0]!,
};

let declaredAttrs: Map<string, Set<string>> | null = null;

/**
 * The attributes to pass: E_ARG for one the op does not declare (the addon reads only declared
 * names), and undefined when none is set, which the addon skips without looking at the object.
 */
function checkedAttrs(op: string, attrs: Record<string, unknown>): Record<string, unknown> | undefined {
  declaredAttrs ??= new Map(raw.buildInfo().ops.map((o) => [o.name, new Set(o.attrs)]));
  const declared = declaredAttrs.get(op); // an unknown op: the addon says so
  let any = false;
  for (const name in attrs) {
    if (attrs[name] === undefined) continue;
    if (declared && !declared.has(name)) throw Object.assign(new Error(`${op}: unknown attribute '${name}'`), { code: 'E_ARG' });
    any = true;
  }
  return any ? attrs : undefined;
}
