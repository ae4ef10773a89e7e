/**
 * The all-reduce of a data-parallel update's gradients, overlapped with the backward pass: the
 * parameters are grouped into buckets in reverse order (the backward pass completes the last
 * layers' gradients first), and a bucket's all-reduce starts (kx.dist.allReduceAsync, on the native
 * communication thread) as soon as all its gradients are complete, while the pass goes on. Buckets
 * are started strictly in bucket order, so every process queues the same collectives in the same
 * order whatever order its gradients complete in.
 * Overlap is the default for CUDA parameters (NCCL runs on the GPU; the host only queues it) and
 * not for CPU ones, whose all-reduce (copies, sums and Open MPI's polling) runs on the cores the
 * backward pass computes on: measured on 2 cores (bench/dist_results.md) it cost 20–60% of the
 * tokens/s and hid under a tenth of the all-reduce (the word embeddings' gradient, most of the
 * bytes, is complete only at the end of the pass).
 * KEXUE_DIST_OVERLAP=1 or 0 forces it on or off; off, every bucket starts after the pass.
 */
import { ArgumentError, dist, type Tensor } from '@kexue/core-cuda';

/** Bytes per bucket: KEXUE_DIST_BUCKET_MB (MiB), default 4. */
export function bucketBytes(): number {
  const text = process.env.KEXUE_DIST_BUCKET_MB;
  const mb = text === undefined || text === '' ? 4 : Number(text);
  if (!(mb > 0)) throw new ArgumentError(`KEXUE_DIST_BUCKET_MB must be a positive number of MiB, got '${text}'`);
  return Math.max(1, Math.round(mb * 2 ** 20));
}

export class GradientReducer {
  /** Parameter indices by bucket, last parameters first. */
  readonly #buckets: number[][] = [];
  readonly #bucketOf: number[] = [];
  #grads: (Tensor | null)[] = [];
  #missing: number[] = [];
  #next = 0;
  #pending: dist.PendingCollective[] = [];
  readonly #overlap: boolean;

  /** `params`: the parameters in the order their gradients are passed back. */
  constructor(params: readonly Tensor[], bytes = bucketBytes()) {
    const forced = process.env.KEXUE_DIST_OVERLAP;
    if (forced !== undefined && forced !== '' && forced !== '0' && forced !== '1') throw new ArgumentError(`KEXUE_DIST_OVERLAP must be 0 or 1, got '${forced}'`);
    this.#overlap = forced === '1' || ((forced === undefined || forced === '') && params[0]?.device.startsWith('cuda') === true);
    let size = 0;
    for (let i = params.length - 1; i >= 0; i--) {
      const b = params[i]!.size * 4;
      if (this.#buckets.length === 0 || size + b > bytes) {
        this.#buckets.push([]);
        size = 0;
      }
      this.#buckets.at(-1)!.push(i);
      this.#bucketOf[i] = this.#buckets.length - 1;
      size += b;
    }
    this.#reset();
  }

  #reset() {
    this.#grads = this.#bucketOf.map(() => null);
    this.#missing = this.#buckets.map((b) => b.length);
    this.#next = 0;
    this.#pending = [];
  }

  /**
   * Parameter i's gradient is complete: `grad` is the caller's own tensor (reduced in place, so not
   * shared with anything still in use). Starts every bucket that is now complete, in order.
   */
  ready(i: number, grad: Tensor): void {
    if (this.#grads[i]) throw new Error(`GradientReducer: the gradient of parameter ${i} was given twice`);
    this.#grads[i] = grad;
    this.#missing[this.#bucketOf[i]!]!--;
    if (this.#overlap) this.#startComplete();
  }

  /** Starts the complete buckets that follow the last one started. */
  #startComplete(): void {
    while (this.#next < this.#buckets.length && this.#missing[this.#next] === 0) {
      const tensors = this.#buckets[this.#next]!.map((k) => this.#grads[k]!);
      // one native bucket: the whole of this one
      const bytes = tensors.reduce((n, t) => n + t.size * 4, 0);
      this.#pending.push(dist.allReduceAsync(tensors, 'sum', { bucketBytes: bytes }));
      this.#next++;
    }
  }

  /**
   * Waits for every bucket (all must have been started: every gradient given), then sums `extra`
   * (the loss and the like) across processes; returns the summed gradients in parameter order and
   * is ready for the next update.
   */
  finish(extra: Tensor): Tensor[] {
    this.#startComplete();
    if (this.#next !== this.#buckets.length) throw new Error(`GradientReducer: ${this.#grads.filter((g) => g === null).length} gradients never became ready`);
    for (const p of this.#pending) p.wait();
    dist.allReduce([extra], 'sum');
    const grads = this.#grads as Tensor[];
    this.#reset();
    return grads;
  }
}
