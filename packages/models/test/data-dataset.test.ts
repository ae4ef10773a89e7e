/** Seeded shuffles, batching and exact resumption from a saved position. */
import { describe, expect, it } from 'vitest';

import { philox4x32 } from '@kexue/core-cuda';
import { Dataset, readCluener, SHUFFLE_STREAM, shuffledOrder } from '@kexue/models';

import { expectCode } from '../../core-cuda/test/helpers.js';
import { data } from './data-helpers.js';

describe('shuffledOrder', () => {
  it('is a permutation fixed by (seed, epoch), different across seeds and epochs', () => {
    const a = shuffledOrder(1000, 42, 0);
    expect(Array.from(a).sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(shuffledOrder(1000, 42, 0)).toEqual(a);
    expect(shuffledOrder(1000, 42, 1)).not.toEqual(a);
    expect(shuffledOrder(1000, 43, 0)).not.toEqual(a);
    expect(shuffledOrder(0, 1, 0).length).toBe(0);
    expect(shuffledOrder(1, 1, 0)).toEqual(Uint32Array.from([0]));
  });

  it('is Fisher–Yates over the Philox stream with rejection sampling', () => {
    const seed = 9;
    const epoch = 5;
    const key = [seed, 0];
    let w = 0;
    const word = () => philox4x32([Math.floor(w / 4), 0, epoch, SHUFFLE_STREAM], key)[w++ % 4]!;
    const below = (m: number) => {
      for (;;) {
        const x = word();
        if (x < 2 ** 32 - (2 ** 32 % m)) return x % m;
      }
    };
    const ref = Array.from({ length: 50 }, (_, i) => i);
    for (let i = 49; i > 0; i--) {
      const j = below(i + 1);
      [ref[i], ref[j]] = [ref[j]!, ref[i]!];
    }
    expect(Array.from(shuffledOrder(50, seed, epoch))).toEqual(ref);
  });

  it('puts each element in each position about equally often', () => {
    const n = 5;
    const hits = Array.from({ length: n }, () => new Array<number>(n).fill(0));
    for (let e = 0; e < 5000; e++) {
      const o = shuffledOrder(n, 3, e);
      for (let p = 0; p < n; p++) hits[p]![o[p]!]!++;
    }
    for (const row of hits) for (const h of row) expect(Math.abs(h - 1000)).toBeLessThan(130);
  });
});

describe('BatchLoader', () => {
  const ds = new Dataset(Array.from({ length: 10 }, (_, i) => `r${i}`));

  it('hands out every record once per epoch, in file order without shuffle', () => {
    const loader = ds.batches({ batchSize: 4 });
    const batches = [...loader.epoch()];
    expect(batches.map((b) => b.indices)).toEqual([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
    expect(batches.map((b) => [b.epoch, b.index])).toEqual([[0, 0], [0, 4], [0, 8]]);
    expect(batches[2]!.records).toEqual(['r8', 'r9']);
    expect(loader.position).toEqual({ epoch: 1, index: 0 });
    expect(loader.batchesPerEpoch).toBe(3);
  });

  it('shuffles each epoch by (seed, epoch) and drops a short last batch when asked', () => {
    const loader = ds.batches({ batchSize: 4, shuffle: true, seed: 11, dropLast: true });
    expect(loader.batchesPerEpoch).toBe(2);
    const e0 = [...loader.epoch()];
    const e1 = [...loader.epoch()];
    expect(e0.length).toBe(2);
    expect(e0.flatMap((b) => b.indices)).toEqual(Array.from(shuffledOrder(10, 11, 0).subarray(0, 8)));
    expect(e1.flatMap((b) => b.indices)).toEqual(Array.from(shuffledOrder(10, 11, 1).subarray(0, 8)));
    expect(loader.position).toEqual({ epoch: 2, index: 0 });
  });

  it('resumes exactly from a saved position', () => {
    const opts = { batchSize: 3, shuffle: true, seed: 5 };
    const straight = ds.batches(opts);
    const reference = Array.from({ length: 12 }, () => straight.next());
    for (let stop = 0; stop <= 11; stop++) {
      const first = ds.batches(opts);
      for (let i = 0; i < stop; i++) first.next();
      const saved = JSON.parse(JSON.stringify(first.position));
      const resumed = ds.batches({ ...opts, position: saved });
      const rest = Array.from({ length: 12 - stop }, () => resumed.next());
      expect(rest).toEqual(reference.slice(stop));
    }
  });

  it('resumes from any index, batch-aligned or not, and normalizes the end of an epoch', () => {
    const loader = ds.batches({ batchSize: 4, position: { epoch: 2, index: 7 } });
    expect(loader.next().indices).toEqual([7, 8, 9]);
    expect(loader.position).toEqual({ epoch: 3, index: 0 });
    loader.seek({ epoch: 4, index: 10 });
    expect(loader.position).toEqual({ epoch: 5, index: 0 });
    const dl = ds.batches({ batchSize: 4, dropLast: true, position: { epoch: 0, index: 7 } });
    expect(dl.position).toEqual({ epoch: 1, index: 0 });
  });

  it('checks its options (E_ARG)', () => {
    expectCode(() => ds.batches({ batchSize: 0 }), 'E_ARG');
    expectCode(() => ds.batches({ batchSize: 2.5 }), 'E_ARG');
    expectCode(() => ds.batches({ batchSize: 11, dropLast: true }), 'E_ARG');
    expectCode(() => new Dataset([]).batches({ batchSize: 1 }), 'E_ARG');
    expectCode(() => ds.batches({ batchSize: 2, seed: -1 }), 'E_ARG');
    expectCode(() => ds.batches({ batchSize: 2, position: { epoch: 0, index: 11 } }), 'E_ARG');
    expectCode(() => ds.batches({ batchSize: 2, position: { epoch: -1, index: 0 } }), 'E_ARG');
  });

  it('collects a reader into a dataset', async () => {
    const dev = await Dataset.fromAsync(readCluener(data('ner/cluener/dev.jsonl')));
    expect(dev.length).toBe(1343);
    const loader = dev.batches({ batchSize: 32, shuffle: true, seed: 1 });
    const seen = new Set<number>();
    for (const b of loader.epoch()) for (const i of b.indices) seen.add(i);
    expect(seen.size).toBe(1343);
  });
});
