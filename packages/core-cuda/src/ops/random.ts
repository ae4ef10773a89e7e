/**
 * Random ops, drawn from Philox-4x32-10 (native/include/kx/philox.h): counter-based, so random
 * element e of a draw depends only on (seed, offset + e). A run with a seed is repeatable on the
 * same device and build, whatever the threading.
 */
import { zeros } from '../creation.js';
import { ArgumentError } from '../errors.js';
import { runKernel1 } from '../kernel.js';
import { registerGradient, type Attrs } from '../tape.js';
import { Tensor } from '../tensor.js';
import { dynamicAttrs, tracing } from '../trace_hook.js';
import { assertFloat } from './check.js';

/** Where a draw's random numbers come from: the generator key and the index of its first number. */
export interface RandomKey {
  /** An integer in [0, 2^53). */
  seed: number;
  /** Index of the first random number used (an integer in [0, 2^53)); default 0. */
  offset?: number;
}

function checkU53(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new ArgumentError(`${what} must be an integer in [0, 2^53), got ${String(value)}`);
  }
  return value;
}

/**
 * A seeded source of random keys: each `take(n)` returns the key for n fresh random numbers and
 * advances the offset past them, so successive draws (dropout masks of successive layers or
 * steps) never reuse numbers. Its state is just (seed, offset), which checkpoints can save.
 */
export class Philox {
  readonly seed: number;
  #offset: number;

  constructor(seed: number, offset = 0) {
    this.seed = checkU53(seed, 'Philox: seed');
    this.#offset = checkU53(offset, 'Philox: offset');
  }

  /** Index of the next unused random number. */
  get offset(): number {
    return this.#offset;
  }

  /** Reserves n random numbers: returns their key and advances the offset by n. */
  take(n: number): Required<RandomKey> {
    checkU53(n, 'Philox.take: n');
    const key = { seed: this.seed, offset: this.#offset };
    this.#offset = checkU53(this.#offset + n, 'Philox: offset');
    return key;
  }
}

/**
 * Training-time inverted dropout: y = x · keep / (1 − p), where element i is kept when the
 * uniform number u(seed, offset + i) ∈ [0, 1) (the top 24 bits of a Philox word) is ≥ p, i.e.
 * with probability 1 − p. `rng` is a key ({ seed, offset? }) or a Philox generator, which reserves
 * x.size numbers. p must be in [0, 1) (E_ARG otherwise); p = 0 returns a copy of x (a new tensor
 * with the same values). x must be floating (E_DTYPE); halves are computed in float32. The same
 * key on the same build gives the same mask; the gradient reuses it.
 *
 * Under kx.compile, a draw from a Philox generator is taken again at every replay (its key and
 * offset are attributes recomputed by kx.dynamicAttrs, as is its gradient's), so a compiled step
 * draws the masks an eager step would draw at that point of the generator; a draw from a fixed key
 * repeats its mask, as eagerly.
 */
export function dropout(x: Tensor, p: number, rng: RandomKey | Philox): Tensor {
  assertFloat(x, 'dropout', 'x');
  if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw new ArgumentError(`dropout: p must be in [0, 1), got ${String(p)}`);
  if (rng === null || typeof rng !== 'object') throw new ArgumentError('dropout: rng must be { seed, offset? } or a Philox');
  const attrs = dropoutAttrs(p, rng instanceof Philox ? rng.take(x.size) : rng, x.size);
  if (rng instanceof Philox && tracing()) {
    let drawn = attrs;
    replayedDraws.set(attrs, () => drawn);
    dynamicAttrs(1, () => [(drawn = dropoutAttrs(p, rng.take(x.size), x.size))]);
  }
  return runKernel1('dropout', [x], attrs);
}

function dropoutAttrs(p: number, key: RandomKey, size: number): Attrs {
  const seed = checkU53(key.seed, 'dropout: seed');
  const offset = checkU53(key.offset ?? 0, 'dropout: offset');
  checkU53(offset + size, 'dropout: offset + x.size');
  return { p, seed, offset };
}

/**
 * @internal The checked key of a draw of n random numbers: a key as given, or the next n of a
 * Philox generator (E_ARG for a key outside [0, 2^53) or one whose numbers would run past it).
 */
export function drawKey(rng: RandomKey | Philox, n: number, what: string): Required<RandomKey> {
  if (rng === null || typeof rng !== 'object') throw new ArgumentError(`${what}: rng must be { seed, offset? } or a Philox`);
  const key = rng instanceof Philox ? rng.take(n) : rng;
  const seed = checkU53(key.seed, `${what}: seed`);
  const offset = checkU53(key.offset ?? 0, `${what}: offset`);
  checkU53(offset + n, `${what}: offset + count`);
  return { seed, offset };
}

/**
 * Standard normal float32 numbers of the given shape on a device (default the CPU), drawn by
 * Box–Muller from Philox: element i comes from Philox(seed, offset + i) in a stream of its own
 * (native/include/kx/philox.h, `philox_normal`), so the same key gives the same numbers on the
 * CPU and CUDA (to the last bit or two of the devices' log and cos). `rng` is a key or a Philox
 * generator, which reserves one number per element (under kx.compile, afresh at every replay, as
 * dropout's). No gradient (nothing to differentiate).
 */
export function randomNormal(shape: readonly number[], rng: RandomKey | Philox, options: { device?: string } = {}): Tensor {
  const like = zeros(shape, { dtype: 'uint8', ...(options.device !== undefined ? { device: options.device } : {}) });
  try {
    const attrs = drawKey(rng, like.size, 'randomNormal');
    // under kx.compile a generator's draw is taken afresh at every replay, as dropout's
    if (rng instanceof Philox && tracing()) dynamicAttrs(1, () => [drawKey(rng, like.size, 'randomNormal')]);
    return runKernel1('normal', [like], attrs);
  } finally {
    like.dispose();
  }
}

/**
 * The attributes a traced draw from a Philox generator has at the current replay, by the traced
 * forward op's attributes: its gradient, recorded later in the same trace, reuses that replay's key.
 */
const replayedDraws = new WeakMap<Attrs, () => Attrs>();

// dy passes where x was kept, scaled alike: the same kernel with the same key.
registerGradient('dropout', ([dy], { attrs }) => {
  if (!dy) return [null];
  const replayed = replayedDraws.get(attrs);
  if (replayed) dynamicAttrs(1, () => [replayed()]);
  return [runKernel1('dropout', [dy], attrs)];
});
