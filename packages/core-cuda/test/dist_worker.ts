/**
 * One rank of dist.test.ts's MPI jobs (`mpirun -np 2 tsx --conditions=source dist_worker.ts SCENARIO`):
 * it prints one JSON line `RESULT {...}` with what it saw, which the test checks.
 *   collectives  all-reduce (sum, mean, several buckets, one-tensor buckets, async), broadcast,
 *                barrier and the typed errors of bad calls
 *   stall        rank 1 stops taking part (sleeps past the timeout): rank 0's all-reduce must fail
 *                with E_DIST within KEXUE_DIST_TIMEOUT
 *   kill         rank 1 kills itself with SIGKILL before an all-reduce: the job must end, not hang
 *   nccl         all-reduce and broadcast of CUDA tensors, one GPU per rank (NCCL)
 */
import * as kx from '@kexue/core-cuda';

const scenario = process.argv[2];
const world = kx.dist.init();
const out: Record<string, unknown> = { rank: world.rank, size: world.size, library: world.library };

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'none';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

const print = () => console.log(`RESULT ${JSON.stringify(out)}`);

if (scenario === 'collectives') {
  const r = world.rank;
  // 5 float32 tensors of odd sizes; bucketBytes 64 packs the small ones and leaves the 40-element one alone
  const sizes = [3, 1, 40, 7, 5];
  const make = () => sizes.map((n, k) => kx.tensor(Float32Array.from({ length: n }, (_, i) => (r + 1) * (i + 1) + k * 0.5), [n]));
  const summed = make();
  kx.dist.allReduce(summed, 'sum', { bucketBytes: 64 });
  out.sum = summed.map((t) => Array.from(t.dataSync()));
  const averaged = make();
  kx.dist.allReduce(averaged, 'mean');
  out.mean = averaged.map((t) => Array.from(t.dataSync()));
  const counts = kx.tensor([r + 1, 10 * (r + 1)], [2], { dtype: 'int32' });
  kx.dist.allReduce([counts], 'sum');
  out.intSum = Array.from(counts.dataSync());
  // async: started, other work done meanwhile, then waited for
  const big = kx.tensor(Float32Array.from({ length: 1 << 16 }, (_, i) => (i % 7) * (r + 1)), [1 << 16]);
  const pending = kx.dist.allReduceAsync([big], 'sum');
  const unrelated = kx.add(kx.tensor([1, 2], [2]), kx.tensor([3, 4], [2])).dataSync();
  pending.wait();
  pending.wait();
  const bigData = big.dataSync();
  out.async = { first: Array.from(bigData.slice(0, 8)), unrelated: Array.from(unrelated) };
  // broadcast from rank 1 of three dtypes in one bucket
  const f = kx.tensor([r, r + 0.25], [2]);
  const i = kx.tensor([r * 7], [1], { dtype: 'int32' });
  const u = kx.tensor([r + 3, r + 4, r + 5], [3], { dtype: 'uint8' });
  kx.dist.broadcast([f, i, u], 1);
  out.broadcast = [Array.from(f.dataSync()), Array.from(i.dataSync()), Array.from(u.dataSync())];
  kx.dist.barrier();
  out.errors = {
    intMean: codeOf(() => kx.dist.allReduce([kx.tensor([1], [1], { dtype: 'int32' })], 'mean')),
    uint8Sum: codeOf(() => kx.dist.allReduce([kx.tensor([1], [1], { dtype: 'uint8' })], 'sum')),
    badOp: codeOf(() => kx.dist.allReduce([kx.tensor([1], [1])], 'max' as 'sum')),
    empty: codeOf(() => kx.dist.allReduce([])),
    twice: codeOf(() => {
      const t = kx.tensor([1], [1]);
      kx.dist.allReduce([t, t]);
    }),
    badRoot: codeOf(() => kx.dist.broadcast([kx.tensor([1], [1])], 2)),
    badBucket: codeOf(() => kx.dist.allReduce([kx.tensor([1], [1])], 'sum', { bucketBytes: 0 })),
    disposed: codeOf(() => {
      const t = kx.tensor([1], [1]);
      t.dispose();
      kx.dist.allReduce([t]);
    }),
  };
  // the bad calls above queued nothing: the ranks are still in step
  const after = kx.tensor([1], [1]);
  kx.dist.allReduce([after]);
  out.after = after.item();
  out.stats = kx.dist.stats();
  print();
} else if (scenario === 'stall') {
  if (world.rank === 1) {
    // stops taking part: sleeps past rank 0's timeout, then leaves
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 15_000);
    process.exit(0);
  }
  const t0 = performance.now();
  try {
    kx.dist.allReduce([kx.tensor([1], [1])]);
    out.code = 'none';
  } catch (err) {
    out.code = (err as { code?: string }).code;
    out.message = (err as Error).message;
    out.afterwards = codeOf(() => kx.dist.barrier());
  }
  out.seconds = (performance.now() - t0) / 1000;
  print();
  process.exit(3);
} else if (scenario === 'kill') {
  kx.dist.allReduce([kx.tensor([1], [1])]);
  if (world.rank === 1) process.kill(process.pid, 'SIGKILL');
  try {
    kx.dist.allReduce([kx.tensor([1], [1])]);
    out.code = 'none';
  } catch (err) {
    out.code = (err as { code?: string }).code;
  }
  print();
  process.exit(3);
} else if (scenario === 'nccl') {
  const device = `cuda:${world.rank % kx.devices().filter((d) => d.type === 'cuda').length}`;
  const summed = kx.tensor([1 + world.rank, 2 * (1 + world.rank), 3 * (1 + world.rank)], [3], { device });
  kx.dist.allReduce([summed], 'sum');
  out.sum = Array.from(summed.to('cpu').toFloat32Array());
  const averaged = kx.tensor([1 + world.rank, 2 * (1 + world.rank), 3 * (1 + world.rank)], [3], { device });
  kx.dist.allReduce([averaged], 'mean');
  out.mean = Array.from(averaged.to('cpu').toFloat32Array());
  const b = kx.tensor([world.rank, world.rank], [2], { device });
  kx.dist.broadcast([b], 1);
  out.broadcast = Array.from(b.to('cpu').toFloat32Array());
  print();
} else {
  throw new Error(`dist_worker: unknown scenario '${scenario}'`);
}
