/**
 * The op profiler: time per op kind (forward and backward apart) and per native call, for finding
 * where a step's time goes. `KEXUE_PROFILE=1` turns it on at load and prints the table to stderr at
 * exit; `KEXUE_PROFILE=sync` also waits for CUDA work after each op, so that a GPU op's row is its
 * kernels' time and not only their launch. From code: `profiler.enable()`, `profiler.rows()`,
 * `profiler.format()`.
 *
 * Enabling swaps the addon's functions for timed wrappers (and disabling swaps them back), so a
 * process that does not profile pays nothing.
 */
import { ArgumentError } from './errors.js';
import { native, type NativeAddon } from './native.js';
import { inBackward } from './tape.js';

/** One row of the profile. */
export interface ProfileRow {
  /** 'op': one native op kind (`matmul`, `matmul (backward)`); 'call': one addon entry point. */
  kind: 'op' | 'call';
  name: string;
  calls: number;
  /** Wall time inside the call, in ms (CUDA ops: launch only, unless enabled with `sync`). */
  totalMs: number;
  meanUs: number;
  maxUs: number;
  /** totalMs over the time profiled so far (`elapsedMs`). */
  share: number;
}

export interface ProfileOptions {
  /** Wait for the device after each op that leaves CUDA work queued (default false). */
  sync?: boolean;
}

interface Counter {
  calls: number;
  totalNs: bigint;
  maxNs: bigint;
}

type AddonFunctions = { [K in keyof NativeAddon as NativeAddon[K] extends (...args: never[]) => unknown ? K : never]: NativeAddon[K] };
type AnyFunction = (...args: unknown[]) => unknown;

const ops = new Map<string, Counter>();
const calls = new Map<string, Counter>();
let original: Partial<Record<keyof AddonFunctions, AnyFunction>> | null = null;
let startedNs = 0n;
let profiledNs = 0n;

function count(table: Map<string, Counter>, key: string, ns: bigint): void {
  let c = table.get(key);
  if (!c) table.set(key, (c = { calls: 0, totalNs: 0n, maxNs: 0n }));
  c.calls += 1;
  c.totalNs += ns;
  if (ns > c.maxNs) c.maxNs = ns;
}

/** An op's row: its name, with ` (backward)` for an op of a backward pass. */
export function opRowName(op: string, backward = inBackward()): string {
  return backward ? `${op} (backward)` : op;
}

/** fn timed into its call row (and run into its op's row); `sync` waits for CUDA after each op. */
function timed(name: keyof AddonFunctions, fn: AnyFunction, sync: AnyFunction | null): AnyFunction {
  if (name === 'run') {
    return (...args: unknown[]) => {
      const start = process.hrtime.bigint();
      const outs = fn(...args) as { device: string }[];
      if (sync && outs.some((o) => o.device !== 'cpu')) sync();
      const ns = process.hrtime.bigint() - start;
      count(ops, opRowName(args[0] as string), ns);
      count(calls, name, ns);
      return outs;
    };
  }
  return (...args: unknown[]) => {
    const start = process.hrtime.bigint();
    try {
      return fn(...args);
    } finally {
      count(calls, name, process.hrtime.bigint() - start);
    }
  };
}

function rowsOf(kind: ProfileRow['kind'], table: Map<string, Counter>, elapsedMs: number): ProfileRow[] {
  return [...table].map(([name, c]) => {
    const totalMs = Number(c.totalNs) / 1e6;
    return {
      kind,
      name,
      calls: c.calls,
      totalMs,
      meanUs: (totalMs * 1e3) / c.calls,
      maxUs: Number(c.maxNs) / 1e3,
      share: elapsedMs > 0 ? totalMs / elapsedMs : 0,
    };
  });
}

/**
 * Counts a compiled program's replay into the op rows: `stepNs[i]` nanoseconds under `rows[i]`
 * (the traced op's row name, or `fused group`), so a compiled step's table reads like an eager one.
 */
export function countProgramSteps(rows: readonly string[], stepNs: Float64Array): void {
  rows.forEach((row, i) => count(ops, row, BigInt(Math.round(stepNs[i]!))));
}

/** The profiler (one per process). */
export const profiler = {
  /** Whether ops are being timed. */
  get enabled(): boolean {
    return original !== null;
  },

  /** Starts timing every native call (a no-op when already on). */
  enable(options: ProfileOptions = {}): void {
    if (original) return;
    const mutable = native as unknown as Record<string, AnyFunction>;
    original = {};
    const sync = options.sync === true ? mutable.cudaSynchronize!.bind(native) : null;
    for (const [name, fn] of Object.entries(mutable)) {
      if (typeof fn !== 'function') continue;
      original[name as keyof AddonFunctions] = fn;
      mutable[name] = timed(name as keyof AddonFunctions, fn, sync);
    }
    startedNs = process.hrtime.bigint();
  },

  /** Stops timing; what was counted stays until reset(). */
  disable(): void {
    if (!original) return;
    Object.assign(native, original);
    original = null;
    profiledNs += process.hrtime.bigint() - startedNs;
  },

  /** Forgets what was counted. */
  reset(): void {
    ops.clear();
    calls.clear();
    profiledNs = 0n;
    startedNs = process.hrtime.bigint();
  },

  /** Wall time profiled so far, in ms (the denominator of every row's share). */
  elapsedMs(): number {
    const running = original ? process.hrtime.bigint() - startedNs : 0n;
    return Number(profiledNs + running) / 1e6;
  },

  /** Op rows then call rows, each by total time, longest first. */
  rows(): ProfileRow[] {
    const elapsed = this.elapsedMs();
    const byTime = (a: ProfileRow, b: ProfileRow) => b.totalMs - a.totalMs;
    return [...rowsOf('op', ops, elapsed).sort(byTime), ...rowsOf('call', calls, elapsed).sort(byTime)];
  },

  /** The profile as a text table. */
  format(): string {
    const rows = this.rows();
    const elapsed = this.elapsedMs();
    const lines = [`kexue profile: ${elapsed.toFixed(1)} ms profiled`];
    const header = (title: string) => lines.push(`${title.padEnd(34)} ${'calls'.padStart(9)} ${'total ms'.padStart(11)} ${'mean µs'.padStart(10)} ${'max µs'.padStart(10)} ${'share'.padStart(7)}`);
    for (const kind of ['op', 'call'] as const) {
      header(kind === 'op' ? 'op' : 'native call');
      for (const r of rows.filter((x) => x.kind === kind)) {
        lines.push(
          `${r.name.padEnd(34)} ${String(r.calls).padStart(9)} ${r.totalMs.toFixed(2).padStart(11)} ${r.meanUs.toFixed(1).padStart(10)} ${r.maxUs.toFixed(1).padStart(10)} ${(100 * r.share).toFixed(1).padStart(6)}%`,
        );
      }
    }
    return lines.join('\n') + '\n';
  },
};

/** KEXUE_PROFILE: unset, '' or '0' off; '1' on; 'sync' on, waiting for CUDA after each op. */
export function profileFromEnv(value: string | undefined): ProfileOptions | null {
  if (value === undefined || value === '' || value === '0') return null;
  if (value === '1') return {};
  if (value === 'sync') return { sync: true };
  throw new ArgumentError(`KEXUE_PROFILE must be 1, sync or 0, got '${value}'`);
}

const fromEnv = profileFromEnv(process.env.KEXUE_PROFILE);
if (fromEnv) {
  profiler.enable(fromEnv);
  process.on('exit', () => process.stderr.write(profiler.format()));
}
