/**
 * Learning-rate schedules: functions from a step count to a multiplier of the base learning rate.
 * An optimizer evaluates its schedule at its own 0-based counter before the step (Tiger's counts
 * micro-steps, ALGORITHMS.md §1.3).
 */
import { ArgumentError } from '@kexue/core-cuda';

import { booleanOption, checkKeys, numberOption } from './options.js';

/** A multiplier of the base learning rate at a 0-based step. */
export type ScheduleFn = (step: number) => number;
/** A schedule function, or a piecewise-linear table {step: multiplier} (see piecewiseLinear). */
export type Schedule = ScheduleFn | Readonly<Record<number, number>>;

export interface PiecewiseLinearOptions {
  /** Prepend (0, 0) when the first key is not 0, so the schedule warms up from 0. Default true. */
  fromZero?: boolean;
}

/**
 * The piecewise-linear schedule of Tiger and bert4keras (ALGORITHMS.md §1.6): the table's points
 * sorted by step (with (0, 0) prepended when fromZero and the first key is not 0), linear between
 * neighbouring points, the last multiplier from the last key on, the first before the first key.
 * piecewiseLinear({40000: 1, 160000: 0.5}) gives 0, 0.5, 0.75, 0.5 at 0, 2e4, 1e5, 1e6.
 */
export function piecewiseLinear(schedule: Readonly<Record<number, number>>, options: PiecewiseLinearOptions = {}): ScheduleFn {
  const where = 'piecewiseLinear';
  const opts = checkKeys(options, ['fromZero'], where);
  const fromZero = booleanOption(opts.fromZero, true, 'fromZero', where);
  if (schedule === null || typeof schedule !== 'object' || Array.isArray(schedule)) {
    throw new ArgumentError(`${where}: schedule must be an object {step: multiplier}`);
  }
  const points = Object.entries(schedule).map(([k, v]): [number, number] => {
    const step = Number(k);
    if (k.trim() === '' || !Number.isFinite(step) || step < 0) throw new ArgumentError(`${where}: step '${k}' must be a number >= 0`);
    return [step, numberOption(v, 0, `multiplier at ${k}`, where)];
  });
  if (points.length === 0) throw new ArgumentError(`${where}: schedule is empty`);
  points.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < points.length; i++) {
    if (points[i]![0] === points[i - 1]![0]) throw new ArgumentError(`${where}: step ${points[i]![0]} appears twice`);
  }
  if (fromZero && points[0]![0] !== 0) points.unshift([0, 0]);
  return (t: number): number => {
    if (t < points[0]![0]) return points[0]![1];
    for (let i = 0; i + 1 < points.length; i++) {
      const [t0, x0] = points[i]!;
      const [t1, x1] = points[i + 1]!;
      if (t < t1) return x0 + ((x1 - x0) / (t1 - t0)) * (t - t0);
    }
    return points[points.length - 1]![1];
  };
}

export interface WarmupDecayOptions {
  /** Steps of linear warm-up from 0 to 1. */
  warmupSteps: number;
  /** The step at which the decay reaches minRatio (and stays). */
  totalSteps: number;
  /** The final multiplier; default 0. */
  minRatio?: number;
}

function warmupDecay(name: string, options: WarmupDecayOptions, decay: (progress: number) => number): ScheduleFn {
  const opts = checkKeys(options, ['warmupSteps', 'totalSteps', 'minRatio'], name);
  if (opts.warmupSteps === undefined || opts.totalSteps === undefined) {
    throw new ArgumentError(`${name}: warmupSteps and totalSteps are required`);
  }
  const warmup = numberOption(opts.warmupSteps, 0, 'warmupSteps', name, { min: 0 });
  const total = numberOption(opts.totalSteps, 0, 'totalSteps', name, { min: warmup, minExclusive: true });
  const minRatio = numberOption(opts.minRatio, 0, 'minRatio', name, { min: 0, max: 1 });
  return (t: number): number => {
    if (t < warmup) return t / warmup;
    const progress = Math.min(1, (t - warmup) / (total - warmup));
    return minRatio + (1 - minRatio) * decay(progress);
  };
}

/** Linear warm-up over warmupSteps, then linear decay to minRatio at totalSteps (as Hugging Face's). */
export function warmupLinear(options: WarmupDecayOptions): ScheduleFn {
  return warmupDecay('warmupLinear', options, (p) => 1 - p);
}

/** Linear warm-up over warmupSteps, then half a cosine down to minRatio at totalSteps (as Hugging Face's). */
export function warmupCosine(options: WarmupDecayOptions): ScheduleFn {
  return warmupDecay('warmupCosine', options, (p) => 0.5 * (1 + Math.cos(Math.PI * p)));
}

/** A Schedule as a function (a table goes through piecewiseLinear with fromZero). */
export function scheduleFn(schedule: unknown, where: string): ScheduleFn {
  if (typeof schedule === 'function') return schedule as ScheduleFn;
  if (schedule !== null && typeof schedule === 'object' && !Array.isArray(schedule)) {
    return piecewiseLinear(schedule as Record<number, number>);
  }
  throw new ArgumentError(`${where}: schedule must be a function or an object {step: multiplier}`);
}
