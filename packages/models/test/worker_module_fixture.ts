/**
 * A module for predict_async.test.ts's forwardAsync tests, and the factory its worker thread calls
 * (WorkerModule imports this file there: a test file, which calls vitest at load, could not be).
 */
import * as kx from '@kexue/core-cuda';
import { InitRng, Linear, Module } from '@kexue/models';

export class TwoLayer extends Module {
  readonly a: Linear;
  readonly b: Linear;
  constructor(n: number) {
    super();
    this.a = this.addModule('a', new Linear(n, 2 * n, { rng: new InitRng(1) }));
    this.b = this.addModule('b', new Linear(2 * n, n, { rng: new InitRng(2) }));
  }

  /** A result with tensors nested in an object and an array, in two dtypes. */
  forward(x: kx.Tensor, opts: { scale: number; half: boolean }): { y: kx.Tensor; parts: kx.Tensor[] } {
    const h = kx.gelu(this.a.forward(x));
    const y = kx.mul(this.b.forward(h), opts.scale);
    return { y: opts.half ? kx.cast(y, 'bfloat16') : y, parts: [h, kx.sum(y)] };
  }
}

export function makeTwoLayer(args: { n: number }): TwoLayer {
  return new TwoLayer(args.n);
}

/** The URL WorkerModule's factory names. */
export const FIXTURE_URL = import.meta.url;
