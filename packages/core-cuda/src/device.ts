/** Devices: what this build and machine can run on. */
import { ArgumentError, DeviceError, NoCudaError, fromNativeError } from './errors.js';
import { native, type NativeBuildInfo, type NativeCudaDevice } from './native.js';

/** 'cpu', 'cuda' (device 0) or 'cuda:N'. */
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

export interface DeviceInfo {
  /** Canonical name: 'cpu' or 'cuda:N'. */
  name: string;
  type: 'cpu' | 'cuda';
  /** GPU name and capability, for CUDA devices. */
  cuda?: NativeCudaDevice;
}

let cudaDeviceList: NativeCudaDevice[] | undefined;
function cudaDeviceInfo(): NativeCudaDevice[] {
  cudaDeviceList ??= native.cudaDevices();
  return cudaDeviceList;
}

/** CUDA queries. `isAvailable()` is true only when the build has CUDA and a GPU answers. */
export const cuda = {
  isAvailable(): boolean {
    return cudaDeviceInfo().length > 0;
  },
  deviceCount(): number {
    return cudaDeviceInfo().length;
  },
  /** Why CUDA is unavailable (empty when it is available). */
  unavailableReason(): string {
    return cudaDeviceInfo().length > 0 ? '' : native.cudaUnavailableReason();
  },
  /**
   * Waits until the work queued on every CUDA device has finished (kernels run asynchronously on
   * one stream per device; reading a tensor's data waits for its own results anyway). Use it around
   * timings; a kernel's failure is raised here as E_DEVICE (the context is then unusable: restart)
   * or E_INTERNAL. A no-op where CUDA is absent.
   */
  synchronize(): void {
    try {
      native.cudaSynchronize();
    } catch (err) {
      throw fromNativeError(err);
    }
  },
  /**
   * Gives the CUDA caching allocator's free blocks back to the driver (cudaFree, after queued work
   * has finished), e.g. before another library needs the memory. Tensors alive are not touched.
   * Returns the bytes released. Allocation does this by itself before reporting E_OOM.
   */
  releaseCache(): number {
    try {
      return native.releaseCudaCache();
    } catch (err) {
      throw fromNativeError(err);
    }
  },
};

/** Every device usable now: the CPU, then each CUDA device. */
export function devices(): DeviceInfo[] {
  return [
    { name: 'cpu', type: 'cpu' },
    ...cudaDeviceInfo().map((d) => ({ name: `cuda:${d.index}`, type: 'cuda' as const, cuda: d })),
  ];
}

/** What was built and chosen: BLAS, the SIMD target the CPU runs dispatch to (KEXUE_SIMD caps it), CUDA and its architectures, thread count, ops. */
export function buildInfo(): NativeBuildInfo {
  return native.buildInfo();
}

/** Sets the CPU thread count (kexue's pool, which also runs the matrix products). Default: KEXUE_NUM_THREADS or all cores. */
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new ArgumentError(`thread count must be a positive integer, got ${n}`);
  native.setNumThreads(n);
}

/** Checks a device name and returns its canonical form; E_NO_CUDA where CUDA is absent, E_DEVICE for an index past the last GPU. */
export function resolveDevice(device: unknown): string {
  if (device === undefined || device === 'cpu') return 'cpu';
  if (typeof device !== 'string' || !/^cuda(:\d+)?$/.test(device)) {
    throw new ArgumentError(`unknown device ${JSON.stringify(device)} (expected 'cpu', 'cuda' or 'cuda:N')`);
  }
  const index = device === 'cuda' ? 0 : Number(device.slice(5));
  const count = cudaDeviceInfo().length;
  if (count === 0) throw new NoCudaError(`CUDA is not available: ${native.cudaUnavailableReason()}`);
  if (index >= count) throw new DeviceError(`no CUDA device ${index} (${count} present)`);
  return `cuda:${index}`;
}
