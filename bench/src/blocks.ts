/**
 * Timed blocks checked for load. Before a block the driver waits (briefly) for the machine to go
 * quiet, so that no side's thread pool still spins from the block before; during it, /proc tells
 * how much CPU other processes took (proc.ts). A block taken under load is timed again, a bounded
 * number of times; when no attempt is quiet the least loaded one is kept and reported as loaded.
 */
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

import { median } from './stats.js';
import { blockLoad, cpuSnapshot, DEFAULT_LOAD_LIMIT, isLoaded, machineTicks, procAvailable, type BlockLoad, type LoadLimit } from './proc.js';

/** How blocks are checked. */
export interface BlockPolicy {
  /** False where /proc cannot be read: blocks are timed once, their load unknown. */
  check: boolean;
  /** Attempts after the first for a block taken under load. */
  retries: number;
  /** Longest wait for a quiet machine before a block, ms. */
  quietWaitMs: number;
  limit: LoadLimit;
  cpus: number;
}

/** Two retries, up to half a second's wait for quiet, the default limit, on this machine. */
export function defaultBlockPolicy(): BlockPolicy {
  return { check: procAvailable(), retries: 2, quietWaitMs: 500, limit: DEFAULT_LOAD_LIMIT, cpus: os.availableParallelism() };
}

/** A window of the machine's busy cores (every process, the benchmark's included). */
export async function busyCores(windowMs: number, cpus: number): Promise<number> {
  const a = machineTicks();
  await sleep(windowMs);
  const b = machineTicks();
  const total = b.total - a.total;
  return total > 0 ? ((b.busy - a.busy) / total) * cpus : 0;
}

/** Waits in 100 ms windows until the machine uses under `quietCores` cores, at most `maxMs`. */
export async function waitForQuiet(maxMs: number, cpus: number, quietCores = 0.2): Promise<void> {
  for (let waited = 0; waited < maxMs; waited += 100) {
    if ((await busyCores(100, cpus)) < quietCores) return;
  }
}

/** A block's samples and what other processes did meanwhile. */
export interface CheckedBlock<T> {
  value: T;
  /** Null when the load was not checked. */
  load: BlockLoad | null;
  loaded: boolean;
  /** Attempts made (1 = the first was quiet). */
  attempts: number;
}

/**
 * Runs `block` (the processes `timed` do its work; `siblings` are the benchmark's other, idle
 * processes) until it is taken without load or the retries are spent; keeps the least loaded attempt.
 */
export async function checkedBlock<T>(block: () => Promise<T>, timed: readonly number[], siblings: readonly number[], policy: BlockPolicy): Promise<CheckedBlock<T>> {
  if (!policy.check) return { value: await block(), load: null, loaded: false, attempts: 1 };
  let best: CheckedBlock<T> | null = null;
  for (let attempt = 1; attempt <= 1 + policy.retries; attempt++) {
    await waitForQuiet(policy.quietWaitMs, policy.cpus);
    const before = cpuSnapshot(timed, siblings);
    const value = await block();
    const load = blockLoad(before, cpuSnapshot(timed, siblings), policy.cpus);
    const loaded = isLoaded(load, policy.limit);
    if (!best || load.foreignCores < best.load!.foreignCores) best = { value, load, loaded, attempts: attempt };
    best.attempts = attempt;
    if (!loaded) break;
  }
  return best!;
}

/** The load of a case's kept blocks, as results.json records it. */
export interface CaseLoad {
  /** Most and median foreign CPU (cores) over the kept blocks. */
  foreign_cores_max: number;
  foreign_cores_median: number;
  /** Most CPU an idle side of the benchmark used during another side's block (cores). */
  sibling_cores_max: number;
  /** Kept blocks, blocks that needed more than one attempt, and kept blocks still under load. */
  blocks: number;
  retried_blocks: number;
  loaded_blocks: number;
}

/** Sums up kept blocks (null when none was checked). */
export function summarizeLoad(blocks: readonly CheckedBlock<unknown>[]): CaseLoad | null {
  const checked = blocks.filter((b) => b.load !== null);
  if (checked.length === 0) return null;
  const foreign = checked.map((b) => b.load!.foreignCores);
  return {
    foreign_cores_max: Math.max(...foreign),
    foreign_cores_median: median(foreign),
    sibling_cores_max: Math.max(...checked.map((b) => b.load!.siblingCores)),
    blocks: checked.length,
    retried_blocks: checked.filter((b) => b.attempts > 1).length,
    loaded_blocks: checked.filter((b) => b.loaded).length,
  };
}
