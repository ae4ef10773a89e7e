/**
 * CPU accounting from /proc, to tell a timed block taken on a quiet machine from one taken under
 * load. /proc/stat gives the busy and total ticks of all CPUs; /proc/<pid>/stat the CPU time of one
 * process (all its threads). Over a block, what the machine was busy with minus what the timed
 * process used is what every other process used: the block's foreign load, in cores.
 */
import { readFileSync } from 'node:fs';

/** Ticks of all CPUs together, from the aggregate `cpu` line of /proc/stat. */
export interface MachineTicks {
  /** user + nice + system + irq + softirq + steal (guest time is already inside user and nice). */
  busy: number;
  /** busy + idle + iowait: grows by (CPU count × ticks per second) every second. */
  total: number;
}

/** Parses /proc/stat's aggregate line: `cpu user nice system idle iowait irq softirq steal guest guest_nice`. */
export function parseProcStat(text: string): MachineTicks {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) throw new Error('/proc/stat has no aggregate cpu line');
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  if (f.length < 4 || f.some((x) => !Number.isFinite(x))) throw new Error(`/proc/stat: cannot read '${line}'`);
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = f;
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, total: busy + idle + iowait };
}

/**
 * A process's CPU time (utime + stime, ticks) from its /proc/<pid>/stat line. The command name (field
 * 2) is in parentheses and may hold spaces or parentheses itself, so fields are counted after the
 * last ')': state is the first of them, utime the 12th and stime the 13th.
 */
export function parsePidStatTicks(text: string): number {
  const close = text.lastIndexOf(')');
  if (close < 0) throw new Error(`/proc/<pid>/stat: cannot read '${text.slice(0, 80)}'`);
  const rest = text.slice(close + 1).trim().split(/\s+/);
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`/proc/<pid>/stat: no utime/stime in '${text.slice(0, 80)}'`);
  return utime + stime;
}

/** CPU time of a process in ticks; 0 for one that has exited. */
export function processTicks(pid: number): number {
  try {
    return parsePidStatTicks(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return 0;
  }
}

/** The machine's ticks now. */
export function machineTicks(): MachineTicks {
  return parseProcStat(readFileSync('/proc/stat', 'utf8'));
}

/** Whether /proc/stat can be read here (Linux); elsewhere blocks are timed without the load check. */
export function procAvailable(): boolean {
  try {
    machineTicks();
    return true;
  } catch {
    return false;
  }
}

/** The machine and some processes at one moment. */
export interface CpuSnapshot {
  machine: MachineTicks;
  /** Ticks of the timed process(es). */
  timed: number;
  /** Ticks of the benchmark's other processes (the sides not being timed). */
  siblings: number;
}

/** A snapshot: `timed` are the processes whose CPU is the block's own, `siblings` the bench's others. */
export function cpuSnapshot(timed: readonly number[], siblings: readonly number[]): CpuSnapshot {
  const sum = (pids: readonly number[]) => pids.reduce((s, p) => s + processTicks(p), 0);
  const t = sum(timed);
  const s = sum(siblings);
  return { machine: machineTicks(), timed: t, siblings: s };
}

/** What other processes used during a block. */
export interface BlockLoad {
  /** CPU used by every process but the timed one(s), in cores (1 = one core busy all along). */
  foreignCores: number;
  /** Of that, what the benchmark's own idle sides used (an idle side should use nothing). */
  siblingCores: number;
  /** The foreign CPU in ticks (the resolution of /proc/stat). */
  foreignTicks: number;
}

/** The load of the block between two snapshots on a machine of `cpus` CPUs. */
export function blockLoad(before: CpuSnapshot, after: CpuSnapshot, cpus: number): BlockLoad {
  const total = after.machine.total - before.machine.total;
  const foreignTicks = Math.max(0, after.machine.busy - before.machine.busy - (after.timed - before.timed));
  const siblingTicks = Math.max(0, after.siblings - before.siblings);
  const cores = (ticks: number) => (total > 0 ? (ticks / total) * cpus : 0);
  return { foreignCores: cores(foreignTicks), siblingCores: cores(siblingTicks), foreignTicks };
}

/** When a block counts as taken under load. */
export interface LoadLimit {
  /** Foreign CPU above this many cores is load. */
  cores: number;
  /**
   * Foreign ticks at or below this are within /proc's accounting noise (the machine's ticks are
   * sampled, a process's time is not), whatever share of a short block they are.
   */
  noiseTicks: number;
}

/** Other processes using more than a tenth of a core, beyond two ticks of accounting noise. */
export const DEFAULT_LOAD_LIMIT: LoadLimit = { cores: 0.1, noiseTicks: 2 };

/** Whether a block was taken under load. */
export function isLoaded(load: BlockLoad, limit: LoadLimit = DEFAULT_LOAD_LIMIT): boolean {
  return load.foreignTicks > limit.noiseTicks && load.foreignCores > limit.cores;
}
