import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));

interface Idle {
  /** The process's threads right after loading the addon (Linux; 0 elsewhere). */
  threads: number;
  load: number;
  rounds: number[];
}

/**
 * CPU time (ms) a process uses while idle for 100 ms: right after loading the addon (`load`), and
 * right after a matrix product and an attention (oneDNN on the pool's threads), a covariance
 * (OpenBLAS's dgemm on the pool's threads) and an eigendecomposition (OpenBLAS's LAPACK on the
 * calling thread), per round (`rounds`), in a fresh process (the settings are read once, as the addon loads).
 */
function idleCpuAfterGemm(env: Record<string, string | undefined>): Idle {
  const script = `
    import * as kx from '@kexue/core-cuda';
    import { readFileSync } from 'node:fs';
    const threads = process.platform === 'linux' ? Number(/Threads:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) : 0;
    const idle = async () => {
      const u0 = process.cpuUsage();
      await new Promise((res) => setTimeout(res, 100));
      const u = process.cpuUsage(u0);
      return (u.user + u.system) / 1000;
    };
    const load = await idle();
    kx.setNumThreads(2);
    const a = kx.keep(kx.full([512, 512], 0.5));
    const q = kx.keep(kx.full([2, 4, 256, 64], 0.1));
    // a full-rank symmetric matrix: dsyevd's blocked steps are what OpenBLAS would share out
    const s = kx.keep(kx.tidy(() => kx.linalg.covariance(kx.tensor(Float32Array.from({ length: 512 * 512 }, (_, i) => Math.sin(i * 0.7)), [512, 512])).cov));
    const rounds = [];
    for (let r = 0; r < 4; r++) {
      kx.tidy(() => kx.matmul(a, a).dataSync());
      kx.tidy(() => kx.attention(q, q, q).dataSync());
      kx.tidy(() => kx.linalg.covariance(a).cov.dataSync());
      kx.tidy(() => kx.linalg.eigh(s).values.dataSync());
      rounds.push(await idle());
    }
    console.log(JSON.stringify({ threads, load, rounds }));`;
  const childEnv = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete childEnv[k];
  const child = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: path.join(here, '..'),
    env: childEnv,
    encoding: 'utf8',
  });
  expect(child.status, child.stderr).toBe(0);
  return JSON.parse(child.stdout.trim()) as Idle;
}

describe('threads that have nothing to do', () => {
  it('sleep: the workers stop spinning right after a matrix product, an eigh and a covariance (OpenBLAS\'s threads too)', () => {
    const { rounds } = idleCpuAfterGemm({ KEXUE_SPIN_US: undefined, OPENBLAS_NUM_THREADS: undefined });
    // a spinning worker would use ~100 ms of CPU per 100 ms idle; the control below shows it does
    expect(Math.min(...rounds)).toBeLessThan(20);
  });

  // OpenBLAS's workers would be one per core but one, each polling ~0.15 s after the load. The
  // control, OPENBLAS_NUM_THREADS=2, starts one (OpenBLAS caps it at the cores): one thread more
  // than the default must show.
  it('loading the addon starts no OpenBLAS workers; a user\'s OPENBLAS_NUM_THREADS=2 starts one, which never gets work', () => {
    const plain = idleCpuAfterGemm({ OPENBLAS_NUM_THREADS: undefined });
    expect(plain.load).toBeLessThan(20);
    const two = idleCpuAfterGemm({ OPENBLAS_NUM_THREADS: '2' });
    if (process.platform === 'linux' && os.availableParallelism() >= 2) expect(two.threads - plain.threads).toBe(1);
    // the addon's openblas_set_num_threads(1): were the worker given an eigh's parts, it would poll
    // after each, up to ~100 ms per round; on a busy machine much less (descheduled), so this is the
    // weaker check, and the median is compared
    const sorted = [...two.rounds].sort((x, y) => x - y);
    expect((sorted[1]! + sorted[2]!) / 2).toBeLessThan(20);
  });

  // (the pool starts no worker thread on a one-core machine)
  it.skipIf(os.availableParallelism() < 2)('keep a value the user set (the control: a pool told to spin for 0.2 s)', () => {
    const { rounds } = idleCpuAfterGemm({ KEXUE_SPIN_US: '200000' });
    expect(Math.max(...rounds)).toBeGreaterThan(50);
  });
});
