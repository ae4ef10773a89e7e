/**
 * A training update as kx.compile'd programs (`train.compile`): the micro-batch's forward and
 * backward, the sum of the micro-batches' gradients, and the update (the mean over micro-batches,
 * the global norm, clipping on the device and the optimizer step). Each traces once per signature
 * and then replays natively; the micro-step's signature is its batch tensors' shapes, which the
 * tasks bound by padding (paddedLength with COMPILE_PAD_MULTIPLE). The eager loop uses the same
 * gradient helpers (sumGradients, scaleGradients), so both run the same ops.
 */
import { add, compile, dispose, globalNormTensor, keep, mul, tidy, valueAndGrad, type CompiledFunction, type CompileStats, type Tensor } from '@kexue/core-cuda';
import type { Optimizer } from '@kexue/optimizers';

/** A batch's tensors, by name (a task's `inputs`). */
export type BatchTensors = Record<string, Tensor>;

/** Named gradients (or parameters). */
export type NamedTensors = Record<string, Tensor>;

/**
 * Lengths and counts of a compiled run's batches (sequence lengths, span and masked-position counts)
 * are rounded up to a multiple of this by default (train.pad_multiple), so that a run traces one
 * micro-step per rounded shape rather than one per batch: at most max_length / 16 sequence lengths.
 * Eager runs pad to the batch's longest by default.
 */
export const COMPILE_PAD_MULTIPLE = 16;

/**
 * The padded size of a batch dimension whose longest row is `longest`: rounded up to a multiple of
 * `multiple` (1: `longest` itself), but not beyond `cap` (a model's maximum length), nor below `longest`.
 */
export function paddedLength(longest: number, multiple: number, cap = Number.POSITIVE_INFINITY): number {
  return Math.max(longest, Math.min(cap, Math.ceil(longest / multiple) * multiple));
}

/** a + b per name (new tensors). */
export function sumGradients(a: NamedTensors, b: NamedTensors): NamedTensors {
  return tidy(() => Object.fromEntries(Object.entries(a).map(([k, x]) => [k, keep(add(x, b[k]!))])));
}

/** g · s per name (new tensors). */
export function scaleGradients(g: NamedTensors, s: number): NamedTensors {
  return tidy(() => Object.fromEntries(Object.entries(g).map(([k, x]) => [k, keep(mul(x, s))])));
}

/** The compiled parts of a training update over a model's parameters. */
export class CompiledUpdate<I extends BatchTensors = BatchTensors> {
  /** Forward and backward of one micro-batch: its loss and the parameters' gradients. */
  readonly micro: CompiledFunction<[I], { value: Tensor; grads: NamedTensors }>;
  /** The sum of two micro-batches' gradients (gradient accumulation). */
  readonly sum: CompiledFunction<[NamedTensors, NamedTensors], NamedTensors>;
  /** The update from the summed gradients; returns their global norm (after the mean over micro-batches). */
  readonly apply: CompiledFunction<[NamedTensors], Tensor>;

  /**
   * @param loss the loss of a micro-batch's tensors (pure tensor code: no host reads)
   * @param gradAccum micro-batches per update; the summed gradients are divided by it
   */
  constructor(params: NamedTensors, optimizer: Optimizer, gradAccum: number, loss: (inputs: I) => Tensor) {
    this.micro = compile((inputs: I) => valueAndGrad(() => loss(inputs), params), { name: 'train_micro_step' });
    this.sum = compile(sumGradients, { name: 'train_grad_sum' });
    this.apply = compile(
      (summed: NamedTensors) => {
        const grads = gradAccum > 1 ? scaleGradients(summed, 1 / gradAccum) : summed;
        const norm = globalNormTensor(Object.values(grads));
        // the norm is a tensor: clipping, if any, happens on the device (a replay recomputes it)
        optimizer.step(params, grads, { gradNorm: norm });
        if (grads !== summed) dispose(Object.values(grads));
        return norm;
      },
      { name: 'train_update' },
    );
  }

  /** Traces and replays of the three programs together (a trace after the first steps means a new batch shape). */
  get stats(): CompileStats {
    const all = [this.micro.stats, this.sum.stats, this.apply.stats];
    return { traces: all.reduce((n, s) => n + s.traces, 0), replays: all.reduce((n, s) => n + s.replays, 0) };
  }

  /** Frees the programs (and the constants they hold). */
  clear(): void {
    this.micro.clear();
    this.sum.clear();
    this.apply.clear();
  }
}
