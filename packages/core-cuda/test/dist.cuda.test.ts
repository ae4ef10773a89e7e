/**
 * kx.dist on CUDA tensors: NCCL (opened at run time) on the device's compute stream. With one GPU, a
 * world of one process without MPI (a clique of one: the sums are the tensors themselves, but the
 * library, its declared ABI, the communicator and the stream are all exercised); with two GPUs and
 * mpirun, a 2-process job, one GPU each, checks real sums. Skipped without a GPU, and with the
 * reason where NCCL (libnccl.so.2; KEXUE_NCCL_LIBRARY) cannot be opened.
 */
import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { mpirun, mpiUnavailable, tsNode } from './mpi_helpers.js';

const gpu = kx.cuda.isAvailable();

describe.skipIf(!gpu)('kx.dist on CUDA (NCCL)', () => {
  it('one process: all-reduce (float32, bfloat16), mean and broadcast keep the values, in stream order', (ctx) => {
    kx.dist.init({ mpi: false });
    const host = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i));
    const x = kx.tensor(host, [1000], { device: 'cuda' });
    // made by kernels queued just before the collective: NCCL must run after them on the stream
    const doubled = kx.mul(x, 2);
    const half = kx.cast(x, 'bfloat16');
    const halfBefore = Array.from(half.to('cpu').toFloat32Array());
    try {
      kx.dist.allReduce([doubled, half], 'sum', { bucketBytes: 1024 });
    } catch (err) {
      if ((err as kx.KexueError).code === 'E_NO_MPI') return ctx.skip(`NCCL not available: ${(err as Error).message}`);
      throw err;
    }
    expect(Array.from(doubled.to('cpu').toFloat32Array())).toEqual(Array.from(host, (v) => Math.fround(v * 2)));
    expect(Array.from(half.to('cpu').toFloat32Array())).toEqual(halfBefore);
    kx.dist.allReduce([doubled], 'mean');
    kx.dist.broadcast([doubled, half], 0);
    expect(Array.from(doubled.to('cpu').toFloat32Array())).toEqual(Array.from(host, (v) => Math.fround(v * 2)));
    // a CPU tensor in a CUDA list is E_DEVICE before anything is queued
    expect(() => kx.dist.allReduce([doubled, kx.tensor([1], [1])])).toThrow(kx.DeviceError);
    kx.dispose([x, doubled, half]);
  });

  const twoGpus = gpu && kx.devices().filter((d) => d.type === 'cuda').length >= 2 && mpiUnavailable() === null;
  it.skipIf(!twoGpus)('two processes, one GPU each: NCCL sums and means across them', () => {
    const job = mpirun(2, [...tsNode('packages/core-cuda/test/dist_worker.ts'), 'nccl']);
    expect(job.status, job.stderr + job.stdout).toBe(0);
    for (const r of job.results) {
      expect(r.sum).toEqual([3, 6, 9]);
      expect(r.mean).toEqual([1.5, 3, 4.5]);
      expect(r.broadcast).toEqual([1, 1]);
    }
  });
});
