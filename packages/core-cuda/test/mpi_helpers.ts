/** Launching MPI jobs from tests: mpirun's flags for this machine, and the ranks' RESULT lines. */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** Why MPI jobs cannot run here (no mpirun on PATH), or null where they can. */
export function mpiUnavailable(): string | null {
  const r = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return 'mpirun not found: install Open MPI (apt-get install openmpi-bin libopenmpi-dev; scripts/setup.sh does)';
  return null;
}

/**
 * mpirun's options for tests: more ranks than cores are allowed (--oversubscribe), as is root (CI
 * runs as root; Open MPI refuses it otherwise), and the ranks' outputs are kept apart by line.
 */
export const MPIRUN_FLAGS = ['--oversubscribe', '--allow-run-as-root', '--bind-to', 'none'];

/** The command that runs a TypeScript file of the repository with the sources' export condition. */
export function tsNode(file: string): string[] {
  return [process.execPath, '--conditions=source', '--import', 'tsx', path.join(repoRoot, file)];
}

export interface MpiJob {
  status: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
  /** The `RESULT {json}` lines the ranks printed, by rank. */
  results: Record<string, unknown>[];
}

/** Runs `mpirun -np N COMMAND…` to its end (or timeoutMs) from the repository root. */
export function mpirun(np: number, command: string[], env: Record<string, string> = {}, timeoutMs = 120_000): MpiJob {
  const t0 = performance.now();
  const r = spawnSync('mpirun', [...MPIRUN_FLAGS, '-np', String(np), ...command], {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
  });
  const results: Record<string, unknown>[] = [];
  for (const line of (r.stdout ?? '').split('\n')) {
    if (!line.startsWith('RESULT ')) continue;
    const value = JSON.parse(line.slice(7)) as Record<string, unknown>;
    results[value.rank as number] = value;
  }
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', seconds: (performance.now() - t0) / 1000, results };
}
