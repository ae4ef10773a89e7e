/**
 * A step's verdicts: which parameters' updates were applied and which were skipped (Tiger's
 * non-finite guard), from what the optimizers' update hook returns.
 */
import * as kx from '@kexue/core-cuda';
import type { Tensor } from '@kexue/core-cuda';

/** Element `index` of a uint8 flags tensor a native update returned (1: applied, 0: skipped). */
export interface DeviceVerdict {
  flags: Tensor;
  index: number;
}

/**
 * Whether a parameter's update was applied (false: skipped for a non-finite gradient), or where
 * that is written in a flags tensor (on any device, the CPU included). Several parameters may
 * share one flags tensor; StepVerdicts reads it.
 */
export type UpdateVerdict = boolean | DeviceVerdict;

/**
 * One step's verdicts by parameter: `skipped` lists the skipped names, `onApplied` is called with
 * each applied one. StepVerdicts owns (and frees) every flags tensor it is given. When it reads
 * them, and so when it waits:
 *
 * - Flags on the CPU are read in the constructor, one read per flags tensor, and freed. This waits
 *   for nothing: CPU ops run synchronously, so their updates have run.
 * - Flags on a GPU are not read in the constructor: they are kept (out of every tidy scope) until
 *   the first settle(), which reads all of them in one device read (concatenated, then copied to
 *   the host) and frees them. That read waits until the device has run the updates that wrote
 *   them. Later settle() calls read nothing.
 *
 * - Flags of a step traced by kx.compile (`deferred`), on any device, are read as GPU ones are:
 *   reading is refused while the trace runs.
 *
 * Booleans read nothing. So `skipped` is complete at once unless `settled` is false.
 */
export class StepVerdicts {
  /** The names whose update was skipped, in the order of the names given (GPU ones after settle()). */
  readonly skipped: string[] = [];
  readonly #onApplied: (name: string) => void;
  /** The names whose verdicts are on a GPU, not read yet, with their verdicts. */
  #pending: { names: string[]; verdicts: DeviceVerdict[] } | null = null;

  /** names[i]'s verdict is verdicts[i]; `deferred`: read CPU flags at settle() too. */
  constructor(names: readonly string[], verdicts: readonly UpdateVerdict[], onApplied: (name: string) => void, deferred = false) {
    this.#onApplied = onApplied;
    const onCpu = new Map<Tensor, ArrayLike<number>>();
    const pending = { names: [] as string[], verdicts: [] as DeviceVerdict[] };
    try {
      verdicts.forEach((v, i) => {
        const name = names[i]!;
        if (typeof v === 'boolean') return this.#record(name, v);
        if (v.flags.device !== 'cpu' || deferred) {
          pending.names.push(name);
          pending.verdicts.push(v);
          if (!v.flags.kept) kx.keep(v.flags);
          return;
        }
        let read = onCpu.get(v.flags);
        if (read === undefined) onCpu.set(v.flags, (read = v.flags.dataSync()));
        this.#record(name, read[v.index] === 1);
      });
    } finally {
      kx.dispose([...onCpu.keys()]);
    }
    if (pending.verdicts.length > 0) this.#pending = pending;
  }

  /** Whether every verdict has been read (false until settle() while GPU flags are pending). */
  get settled(): boolean {
    return this.#pending === null;
  }

  /** Reads the pending GPU flags, all in one device read (waits for their updates), and frees them. */
  settle(): void {
    const p = this.#pending;
    this.#pending = null;
    if (!p) return;
    const tensors = [...new Set(p.verdicts.map((v) => v.flags))];
    try {
      const offsets = new Map<Tensor, number>();
      let size = 0;
      for (const t of tensors) {
        offsets.set(t, size);
        size += t.size;
      }
      const applied = kx.tidy(() => kx.concat(tensors, 0).dataSync());
      p.names.forEach((name, i) => {
        const v = p.verdicts[i]!;
        this.#record(name, applied[offsets.get(v.flags)! + v.index] === 1);
      });
    } finally {
      kx.dispose(tensors);
    }
  }

  #record(name: string, applied: boolean): void {
    if (applied) this.#onApplied(name);
    else this.skipped.push(name);
  }
}
