/**
 * A small in-memory dataset layer: records in an array, batches in a seeded per-epoch order, and a
 * position {epoch, index} that a checkpoint saves to resume exactly where training stopped.
 *
 * The order of epoch e is a Fisher–Yates shuffle of 0..n-1 driven by the Philox stream
 * (seed, c2 = e, c3 = SHUFFLE_STREAM): it depends only on (seed, e, n), so resuming needs no
 * generator state beyond the position.
 */
import { ArgumentError } from '@kexue/core-cuda';

import { PhiloxStream } from '@kexue/core-cuda';

/** Philox counter word c3 reserved for data shuffling ('SHUF'), so shuffles never reuse dropout's numbers. */
export const SHUFFLE_STREAM = 0x53485546;

/** Where a loader stands: `index` records of epoch `epoch`'s order have been handed out. */
export interface Position {
  epoch: number;
  index: number;
}

/** The permutation of 0..n-1 for an epoch: Fisher–Yates from the last element down. */
export function shuffledOrder(n: number, seed: number, epoch: number): Uint32Array {
  if (!Number.isSafeInteger(n) || n < 0 || n > 2 ** 32) throw new ArgumentError(`shuffledOrder: n must be an integer in [0, 2^32], got ${String(n)}`);
  const rng = new PhiloxStream(seed, epoch, SHUFFLE_STREAM);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.nextBelow(i + 1);
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

/** Records held in memory. */
export class Dataset<T> {
  readonly records: readonly T[];

  constructor(records: readonly T[]) {
    if (!Array.isArray(records)) throw new ArgumentError('Dataset: records must be an array');
    this.records = records;
  }

  /** Collects a stream (e.g. a reader) into a dataset. */
  static async fromAsync<T>(source: AsyncIterable<T> | Iterable<T>): Promise<Dataset<T>> {
    const records: T[] = [];
    for await (const r of source) records.push(r);
    return new Dataset(records);
  }

  get length(): number {
    return this.records.length;
  }

  /** A batch loader over this dataset. */
  batches(options: LoaderOptions): BatchLoader<T> {
    return new BatchLoader(this, options);
  }
}

export interface LoaderOptions {
  batchSize: number;
  /** Shuffle each epoch (default false: file order). */
  shuffle?: boolean;
  /** Seed of the shuffles, an integer in [0, 2^53) (default 0). */
  seed?: number;
  /** Drop each epoch's last batch when it is smaller than batchSize (default false). */
  dropLast?: boolean;
  /** Where to start (default {epoch: 0, index: 0}), e.g. a position saved in a checkpoint. */
  position?: Position;
}

export interface Batch<T> {
  records: T[];
  /** Dataset indices of the records. */
  indices: number[];
  /** The epoch the batch belongs to and the position of its first record in that epoch's order. */
  epoch: number;
  index: number;
}

/**
 * Hands out batches epoch after epoch. `position` always points at the next batch's first record:
 * after an epoch's last batch it moves to {epoch + 1, 0}.
 */
export class BatchLoader<T> {
  readonly dataset: Dataset<T>;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  #epoch = 0;
  #index = 0;
  #order: Uint32Array | undefined;
  #orderEpoch = -1;

  constructor(dataset: Dataset<T>, options: LoaderOptions) {
    const { batchSize, shuffle = false, seed = 0, dropLast = false } = options ?? ({} as LoaderOptions);
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new ArgumentError(`BatchLoader: batchSize must be a positive integer, got ${String(batchSize)}`);
    if (!Number.isSafeInteger(seed) || seed < 0) throw new ArgumentError(`BatchLoader: seed must be an integer in [0, 2^53), got ${String(seed)}`);
    const n = dataset.length;
    if (n === 0 || (dropLast && n < batchSize)) {
      throw new ArgumentError(`BatchLoader: no batch of ${batchSize} in a dataset of ${n} records${dropLast ? ' with dropLast' : ''}`);
    }
    this.dataset = dataset;
    this.batchSize = batchSize;
    this.shuffle = shuffle;
    this.seed = seed;
    this.dropLast = dropLast;
    this.seek(options.position ?? { epoch: 0, index: 0 });
  }

  /** Batches per epoch. */
  get batchesPerEpoch(): number {
    const n = this.dataset.length;
    return this.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** The position of the next batch (a copy, to save in a checkpoint). */
  get position(): Position {
    return { epoch: this.#epoch, index: this.#index };
  }

  /** Moves to a saved position. An index past the epoch's last batch means the next epoch's start. */
  seek(position: Position): void {
    const { epoch, index } = position ?? ({} as Position);
    const n = this.dataset.length;
    if (!Number.isSafeInteger(epoch) || epoch < 0 || epoch >= 2 ** 32) throw new ArgumentError(`BatchLoader: position.epoch must be an integer in [0, 2^32), got ${String(epoch)}`);
    if (!Number.isSafeInteger(index) || index < 0 || index > n) throw new ArgumentError(`BatchLoader: position.index must be an integer in [0, ${n}], got ${String(index)}`);
    this.#epoch = epoch;
    this.#index = index;
    this.#normalize();
  }

  /** The dataset indices in the order of `epoch`. */
  order(epoch: number): Uint32Array {
    if (epoch !== this.#orderEpoch || !this.#order) {
      const n = this.dataset.length;
      this.#order = this.shuffle ? shuffledOrder(n, this.seed, epoch) : Uint32Array.from({ length: n }, (_, i) => i);
      this.#orderEpoch = epoch;
    }
    return this.#order;
  }

  /** The next batch; the position advances past it. */
  next(): Batch<T> {
    const epoch = this.#epoch;
    const index = this.#index;
    const order = this.order(epoch);
    const end = Math.min(index + this.batchSize, order.length);
    const indices = Array.from(order.subarray(index, end));
    const records = indices.map((i) => this.dataset.records[i]!);
    this.#index = end;
    this.#normalize();
    return { records, indices, epoch, index };
  }

  /** The remaining batches of the current epoch. */
  *epoch(): Generator<Batch<T>> {
    const epoch = this.#epoch;
    while (this.#epoch === epoch) yield this.next();
  }

  #normalize(): void {
    const remaining = this.dataset.length - this.#index;
    if (remaining < (this.dropLast ? this.batchSize : 1)) {
      if (this.#epoch + 1 >= 2 ** 32) throw new ArgumentError('BatchLoader: epoch counter overflow');
      this.#epoch++;
      this.#index = 0;
    }
  }
}
