/**
 * Data-parallel collectives across the processes of an MPI job (`mpirun -np N node …`): all-reduce,
 * broadcast and barrier over lists of tensors, in place. CPU tensors go through MPI (Open MPI's
 * libmpi, opened at run time), CUDA tensors through NCCL on the device's compute stream (its unique
 * id carried over MPI). Neither library is needed to build or load kexue: `init()` opens them, and
 * their absence is E_NO_MPI naming what to install. Outside an MPI launcher, init() makes a world of
 * this process alone without MPI.
 *
 * Collectives run in call order on one native communication thread, so `allReduceAsync` returns at
 * once and the caller computes on while gradients are reduced (the overlap of the backward pass with
 * communication). Every rank must make the same calls in the same order with tensors of the same
 * shapes. A collective that has not finished within the timeout (KEXUE_DIST_TIMEOUT seconds, default
 * 600) fails with E_DIST: another rank died or stopped; the process must then exit.
 */
import { ArgumentError, DistError, fromNativeError } from './errors.js';
import { native } from './native.js';
import type { Tensor } from './tensor.js';

/** This process's place in the job. */
export interface World {
  rank: number;
  /** Processes in the job. */
  size: number;
  /** The MPI library's version line, e.g. 'Open MPI v4.1.4'. */
  library: string;
}

/** Options of a collective. */
export interface CollectiveOptions {
  /**
   * Bytes per bucket (default 25 MiB, as PyTorch DDP): consecutive tensors of one dtype are packed
   * into a bucket and reduced by one call, so many small gradients cost few messages.
   */
  bucketBytes?: number;
}

const DEFAULT_BUCKET_BYTES = 25 << 20;

let world: World | null = null;
let finalizeOnExit = false;
const totals = { busyMs: 0, waitedMs: 0, collectives: 0 };

function call<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw fromNativeError(err);
  }
}

let timeout: { text: string | undefined; ms: number } | null = null;

/** The limit on one collective, from KEXUE_DIST_TIMEOUT (seconds; default 600), parsed once per value. */
export function timeoutMs(): number {
  const text = process.env.KEXUE_DIST_TIMEOUT;
  if (timeout !== null && timeout.text === text) return timeout.ms;
  let ms = 600_000;
  if (text !== undefined && text !== '') {
    const seconds = Number(text);
    if (!(seconds > 0)) throw new ArgumentError(`KEXUE_DIST_TIMEOUT must be a positive number of seconds, got '${text}'`);
    ms = seconds * 1000;
  }
  timeout = { text, ms };
  return ms;
}

/**
 * Whether this process was started by an MPI launcher (Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE;
 * PMIx-based launchers PMIX_RANK): where it was not, a run is single-process and needs no MPI.
 */
export function launchedByMpi(): boolean {
  return process.env.OMPI_COMM_WORLD_SIZE !== undefined || process.env.PMIX_RANK !== undefined;
}

/** Options of init(). */
export interface InitOptions {
  /**
   * Whether to open MPI (default: whether an MPI launcher started this process, launchedByMpi()).
   * Without it the world is this process alone: collectives leave CPU tensors as they are, and CUDA
   * ones still run through NCCL (a clique of one), so one GPU exercises that path.
   */
  mpi?: boolean;
}

/**
 * Joins the MPI job (once per process; later calls return the same world). MPI is finalized when
 * the process exits with code 0; a process that fails (or whose collective failed) exits without,
 * so that the launcher stops the other ranks at once rather than wait in MPI_Finalize for ranks
 * that are waiting for it. E_NO_MPI where Open MPI's libmpi cannot be opened.
 */
export function init(options: InitOptions = {}): World {
  if (world) return world;
  const mpi = options.mpi ?? launchedByMpi();
  // Open MPI's waits poll a core unless told to yield; here a wait shares the cores with the
  // computation it overlaps (the communication thread), so it yields (read by MPI_Init)
  process.env.OMPI_MCA_mpi_yield_when_idle ??= '1';
  world = call(() => native.distInit(mpi));
  if (!finalizeOnExit) {
    finalizeOnExit = true;
    process.once('exit', (code) => {
      if (code !== 0) return;
      try {
        native.distFinalize();
      } catch {
        // the exit goes on: the launcher reports the rank that did not finalize
      }
    });
  }
  return world;
}

/**
 * This process's rank among the job's processes on its machine (Open MPI's
 * OMPI_COMM_WORLD_LOCAL_RANK; 0 outside a job): which GPU it takes, one per process.
 */
export function localRank(): number {
  const text = process.env.OMPI_COMM_WORLD_LOCAL_RANK;
  return text === undefined ? 0 : Number(text);
}

/** The world joined by init(); E_DIST before it. */
export function current(): World {
  if (!world) throw new DistError('dist: not initialized: call kx.dist.init() first');
  return world;
}

/** Whether init() has run in this process. */
export function initialized(): boolean {
  return world !== null;
}

/** A collective under way: wait() before the tensors are read or written again. */
export class PendingCollective {
  #ticket: number | null;
  readonly #what: string;
  constructor(ticket: number, what: string) {
    this.#ticket = ticket;
    this.#what = what;
  }
  /** Blocks until done (E_DIST when it failed or timed out); a second call does nothing. */
  wait(): void {
    if (this.#ticket === null) return;
    const ticket = this.#ticket;
    this.#ticket = null;
    const t0 = performance.now();
    const busy = call(() => native.distWait(ticket, timeoutMs()));
    totals.waitedMs += performance.now() - t0;
    totals.busyMs += busy;
    totals.collectives++;
  }
  /** What it is, for messages. */
  toString(): string {
    return this.#what;
  }
}

function handles(tensors: readonly Tensor[], what: string) {
  if (tensors.length === 0) throw new ArgumentError(`${what}: no tensors`);
  // in place: a tensor given twice would be summed twice
  if (new Set(tensors).size !== tensors.length) throw new ArgumentError(`${what}: a tensor is given more than once`);
  return tensors.map((t) => t.handle);
}

function bucketBytes(o: CollectiveOptions | undefined): number {
  const b = o?.bucketBytes ?? DEFAULT_BUCKET_BYTES;
  if (!Number.isInteger(b) || b < 1) throw new ArgumentError(`bucketBytes must be a positive integer, got ${b}`);
  return b;
}

/**
 * Starts summing (or averaging) the tensors across ranks, in place; returns at once. float32 and
 * int32 sums, float32 means; on CUDA also float16 and bfloat16.
 */
export function allReduceAsync(tensors: readonly Tensor[], op: 'sum' | 'mean' = 'sum', o?: CollectiveOptions): PendingCollective {
  current();
  if (op !== 'sum' && op !== 'mean') throw new ArgumentError(`allReduce: op must be 'sum' or 'mean', got '${String(op)}'`);
  const ids = handles(tensors, 'allReduce');
  return new PendingCollective(call(() => native.distAllReduce(ids, op, bucketBytes(o))), `all-reduce of ${tensors.length} tensors`);
}

/** Sums (or averages) the tensors across ranks, in place. */
export function allReduce(tensors: readonly Tensor[], op: 'sum' | 'mean' = 'sum', o?: CollectiveOptions): void {
  allReduceAsync(tensors, op, o).wait();
}

/** Copies rank `root`'s tensors into every rank's, in place (any dtype). */
export function broadcast(tensors: readonly Tensor[], root = 0, o?: CollectiveOptions): void {
  const w = current();
  if (!Number.isInteger(root) || root < 0 || root >= w.size) throw new ArgumentError(`broadcast: root ${root} is not a rank of this job (0..${w.size - 1})`);
  const ids = handles(tensors, 'broadcast');
  new PendingCollective(call(() => native.distBroadcast(ids, root, bucketBytes(o))), `broadcast of ${tensors.length} tensors`).wait();
}

/** Returns once every rank has called it. */
export function barrier(): void {
  current();
  new PendingCollective(call(() => native.distBarrier()), 'barrier').wait();
}

/**
 * Time spent on collectives since the process began: `busyMs` on the communication thread, `waitedMs`
 * blocked in wait(). busyMs − waitedMs is the communication hidden behind computation.
 */
export function stats(): { busyMs: number; waitedMs: number; collectives: number; hiddenFraction: number } {
  const hidden = totals.busyMs > 0 ? Math.max(0, Math.min(1, 1 - totals.waitedMs / totals.busyMs)) : 0;
  return { ...totals, hiddenFraction: hidden };
}
