import { afterAll, describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectClose, expectCode, expectGradOk, loadFixture, maxRelError, randomTensor, tolerance } from './helpers.js';

const fx = loadFixture('elementwise');
afterAll(() => kx.dispose(fx.tensors));

type Binary = (a: kx.TensorLike, b: kx.TensorLike) => kx.Tensor;
const BINARY: Record<string, Binary> = { add: kx.add, sub: kx.sub, mul: kx.mul, div: kx.div };

/** The public function a fixture case of kind 'unary' exercises. */
function unaryOf(c: Record<string, unknown>): (x: kx.Tensor) => kx.Tensor {
  switch (c.fn) {
    case 'gelu': return (x) => kx.gelu(x, { approximate: (c.approximate as 'none' | 'tanh' | undefined) ?? 'none' });
    case 'pow': return (x) => kx.pow(x, c.exponent as number);
    default: return (kx as unknown as Record<string, (x: kx.Tensor) => kx.Tensor>)[c.fn as string]!;
  }
}

/** Half cases: fixture inputs are already rounded to the dtype, so this cast is exact. */
function as(dtype: kx.DType, t: kx.Tensor): kx.Tensor {
  return dtype === 'float32' ? t : kx.cast(t, dtype);
}

/** Largest error seen per (kind, dtype), printed at the end as the tolerances actually met. */
const worst = new Map<string, number>();
function record(key: string, err: number): void {
  worst.set(key, Math.max(worst.get(key) ?? 0, err));
}
afterAll(() => {
  console.log('elementwise: worst normalised errors', Object.fromEntries([...worst].map(([k, v]) => [k, v.toExponential(2)])));
});

function checkClose(actual: kx.Tensor, expected: kx.Tensor, tol: number, key: string, label: string): void {
  record(key, maxRelError(actual, expected));
  expectClose(actual, expected, tol, label);
}

describe('binary ops vs PyTorch', () => {
  for (const c of fx.cases.filter((k) => k.kind === 'binary')) {
    it(`${c.name}: forward and gradients`, () => {
      const dtype = c.dtype as kx.DType;
      const op = BINARY[c.op as string]!;
      kx.tidy(() => {
        const a = as(dtype, fx.get(`${c.name}.a`));
        const b = as(dtype, fx.get(`${c.name}.b`));
        const w = as(dtype, fx.get(`${c.name}.w`));
        const y = op(a, b);
        expect(y.dtype).toBe(dtype);
        const tol = tolerance(dtype);
        checkClose(y, fx.get(`${c.name}.y`), tol, `binary fwd ${dtype}`, `${c.name} y`);
        const [da, db] = kx.grad(([p, q]) => kx.sum(kx.mul(op(p!, q!), w)), [a, b]);
        expect(da!.shape).toEqual(a.shape);
        expect(db!.shape).toEqual(b.shape);
        checkClose(da!, fx.get(`${c.name}.da`), tol, `binary grad ${dtype}`, `${c.name} da`);
        checkClose(db!, fx.get(`${c.name}.db`), dtype === 'float32' ? tolerance(dtype, 'reduction') : tol, `binary grad ${dtype}`, `${c.name} db`);
      });
    });
  }

  it('empty tensors broadcast to an empty result', () => {
    kx.tidy(() => {
      const y = kx.add(fx.get('add_empty.a'), fx.get('add_empty.b'));
      expect(y.shape).toEqual([0, 3]);
      expect(y.toFloat32Array().length).toBe(0);
      expect(kx.mul(kx.zeros([0]), 3).shape).toEqual([0]);
      expect(kx.add(kx.zeros([0, 1]), kx.zeros([1, 4])).shape).toEqual([0, 4]);
    });
  });
});

describe('broadcasting across thread chunks (vs float32 JS arithmetic)', () => {
  // Sizes above the kernels' grain, so that several workers split rows in the middle.
  const shapes: Array<[number[], number[]]> = [
    [[300, 257], [300, 1]],
    [[5, 1, 40000], [3, 1]],
    [[70001], []],
    [[2, 3, 1, 4100], [3, 7, 1]],
  ];
  for (const [sa, sb] of shapes) {
    it(`[${sa}] with [${sb}] for every op, float32 exact and halves within rounding`, () => {
      kx.tidy(() => {
        const a = randomTensor(sa, 11, 3);
        const b = kx.add(kx.pow(randomTensor(sb, 12, 1), 2), 0.5); // in [0.5, 1.5]: safe divisor
        const out = kx.add(a, b).shape;
        const rank = out.length;
        const strides = (s: number[]) => {
          const st = new Array<number>(rank).fill(0);
          let acc = 1;
          for (let i = s.length - 1; i >= 0; i--) {
            const axis = rank - s.length + i;
            st[axis] = s[i] === 1 ? 0 : acc;
            acc *= s[i]!;
          }
          return st;
        };
        const stA = strides(sa);
        const stB = strides(sb);
        const av = a.toFloat32Array();
        const bv = b.toFloat32Array();
        const n = out.reduce((p, d) => p * d, 1);
        const ia = new Int32Array(n);
        const ib = new Int32Array(n);
        for (let i = 0; i < n; i++) {
          let r = i;
          let oa = 0;
          let ob = 0;
          for (let d = rank - 1; d >= 0; d--) {
            const k = r % out[d]!;
            r = Math.floor(r / out[d]!);
            oa += k * stA[d]!;
            ob += k * stB[d]!;
          }
          ia[i] = oa;
          ib[i] = ob;
        }
        const ref: Record<string, (x: number, y: number) => number> = {
          add: (x, y) => x + y,
          sub: (x, y) => x - y,
          mul: (x, y) => x * y,
          div: (x, y) => x / y,
        };
        for (const [name, op] of Object.entries(BINARY)) {
          const want = new Float32Array(n);
          for (let i = 0; i < n; i++) want[i] = Math.fround(ref[name]!(av[ia[i]!]!, bv[ib[i]!]!));
          const got = op(a, b);
          expect(got.shape).toEqual(out);
          expect(maxRelError(got, want), `${name} float32`).toBe(0);
          // Halves: the kernel rounds inputs and output; compare with float32 math on rounded inputs.
          for (const dtype of ['float16', 'bfloat16'] as const) {
            const ah = kx.cast(a, dtype);
            const bh = kx.cast(b, dtype);
            const ahv = ah.toFloat32Array();
            const bhv = bh.toFloat32Array();
            const wantH = new Float32Array(n);
            for (let i = 0; i < n; i++) wantH[i] = ref[name]!(ahv[ia[i]!]!, bhv[ib[i]!]!);
            const gotH = op(ah, bh);
            expect(gotH.dtype).toBe(dtype);
            expectClose(gotH, wantH, tolerance(dtype), `${name} ${dtype}`);
          }
        }
      });
    });
  }
});

describe('unary ops vs PyTorch', () => {
  for (const c of fx.cases.filter((k) => k.kind === 'unary')) {
    it(`${c.name}: forward and gradient`, () => {
      const dtype = c.dtype as kx.DType;
      const f = unaryOf(c);
      kx.tidy(() => {
        const x = as(dtype, fx.get(`${c.name}.x`));
        const w = as(dtype, fx.get(`${c.name}.w`));
        const y = f(x);
        expect(y.dtype).toBe(dtype);
        expect(y.shape).toEqual(x.shape);
        const tol = tolerance(dtype);
        checkClose(y, fx.get(`${c.name}.y`), tol, `unary fwd ${dtype}`, `${c.name} y`);
        const [dx] = kx.grad(([p]) => kx.sum(kx.mul(f(p!), w)), [x]);
        checkClose(dx!, fx.get(`${c.name}.dx`), tol, `unary grad ${dtype}`, `${c.name} dx`);
      });
    });
  }

  for (const c of fx.cases.filter((k) => k.kind === 'extreme')) {
    it(`${c.name}: infinities, NaN, overflow and subnormal results element by element`, () => {
      kx.tidy(() => {
        const x = fx.get(`${c.name}.x`).toFloat32Array();
        const got = unaryOf(c)(fx.get(`${c.name}.x`)).toFloat32Array();
        const want = fx.get(`${c.name}.y`).toFloat32Array();
        want.forEach((e, i) => {
          const a = got[i]!;
          const label = `${c.name} at x = ${x[i]}: got ${a}, want ${e}`;
          if (!Number.isFinite(e) || !Number.isFinite(a)) {
            expect(Number.isNaN(e) ? Number.isNaN(a) : a === e, label).toBe(true);
          } else {
            // A few float32 ulps, or the subnormal range's absolute spacing.
            expect(Math.abs(a - e), label).toBeLessThanOrEqual(4e-7 * Math.abs(e) + 1e-40);
          }
        });
      });
    });
  }

  it('large tensors split across threads and blocks agree bit for bit with small ones', () => {
    // 70001 elements: several tasks of the thread pool and a partial last block. The kernels run
    // every element through the same vector code (no scalar remainder loop that could contract
    // a*b+c differently), so a value's result does not depend on its position or the thread count.
    const n = 70001;
    const piece = 997;
    const same = (got: Float32Array, want: Float32Array, label: string) => {
      expect(got.length).toBe(want.length);
      for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i])) expect(got[i], `${label} at ${i}`).toBe(want[i]);
    };
    for (const dtype of ['float32', 'bfloat16', 'float16'] as const) {
      kx.tidy(() => {
        const x = as(dtype, randomTensor([n], 51, 4));
        const dy = as(dtype, randomTensor([n], 52));
        const fns: Array<[string, (t: kx.Tensor) => kx.Tensor]> = [
          ['exp', kx.exp], ['tanh', kx.tanh], ['gelu', (t) => kx.gelu(t)], ['gelu tanh', (t) => kx.gelu(t, { approximate: 'tanh' })],
          ['silu', kx.silu], ['sigmoid', kx.sigmoid], ['log', (t) => kx.log(kx.add(kx.mul(t, t), 0.5))], ['pow', (t) => kx.pow(t, 3)],
        ];
        const xv = x.toFloat32Array();
        const dyv = dy.toFloat32Array();
        for (const [name, f] of fns) {
          const yv = f(x).toFloat32Array();
          const [dx] = kx.grad(([p]) => kx.sum(kx.mul(f(p!), dy)), [x]);
          const dxv = dx!.toFloat32Array();
          for (let s = 0; s < n; s += piece * 7) {
            const e = Math.min(s + piece, n);
            const xs = kx.tensor(xv.slice(s, e), [e - s], { dtype });
            const dys = kx.tensor(dyv.slice(s, e), [e - s], { dtype });
            same(f(xs).toFloat32Array(), yv.slice(s, e), `${name} ${dtype} y`);
            const [dxs] = kx.grad(([p]) => kx.sum(kx.mul(f(p!), dys)), [xs]);
            same(dxs!.toFloat32Array(), dxv.slice(s, e), `${name} ${dtype} dx`);
          }
        }
      });
    }
  });

  it('handles sizes 0, 1, 3, 17 and a scalar', () => {
    kx.tidy(() => {
      for (const n of [0, 1, 3, 17]) {
        const x = randomTensor([n], n + 1, 2);
        const y = kx.gelu(x);
        const xv = x.toFloat32Array();
        const yv = y.toFloat32Array();
        expect(yv.length).toBe(n);
        xv.forEach((v, i) => {
          // 0.5 x (1 + erf(x / sqrt 2)) with erf from tanh-free Abramowitz–Stegun would be too coarse;
          // silu and relu have closed forms in JS.
          expect(kx.relu(x).toFloat32Array()[i]).toBe(Math.max(v, 0));
          expect(Math.abs(yv[i]! - v * 0.5 * (1 + erf(v / Math.SQRT2)))).toBeLessThan(2e-6);
        });
      }
      const s = kx.exp(kx.scalar(1));
      expect(s.shape).toEqual([]);
      expect(s.item()).toBeCloseTo(Math.E, 5);
    });
  });
});

/** erf by its Taylor series (converges fast for the |x| < 3 used here), in float64. */
function erf(x: number): number {
  let sum = 0;
  let term = x;
  for (let n = 0; n < 80; n++) {
    sum += term / (2 * n + 1);
    term *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

describe('where and broadcastTo vs PyTorch', () => {
  for (const c of fx.cases.filter((k) => k.kind === 'where')) {
    it(`${c.name}: forward and gradients`, () => {
      kx.tidy(() => {
        const cond = fx.get(`${c.name}.c`);
        const a = fx.get(`${c.name}.a`);
        const b = fx.get(`${c.name}.b`);
        const w = fx.get(`${c.name}.w`);
        const y = kx.where(cond, a, b);
        expect(Array.from(y.toFloat32Array())).toEqual(Array.from(fx.get(`${c.name}.y`).toFloat32Array()));
        const [da, db] = kx.grad(([p, q]) => kx.sum(kx.mul(kx.where(cond, p!, q!), w)), [a, b]);
        checkClose(da!, fx.get(`${c.name}.da`), tolerance('float32', 'reduction'), 'where grad', `${c.name} da`);
        checkClose(db!, fx.get(`${c.name}.db`), tolerance('float32', 'reduction'), 'where grad', `${c.name} db`);
        // Half branches select bits: exact.
        for (const dtype of ['float16', 'bfloat16'] as const) {
          const yh = kx.where(cond, kx.cast(a, dtype), kx.cast(b, dtype));
          expect(Array.from(yh.dataSync())).toEqual(Array.from(kx.cast(y, dtype).dataSync()));
        }
      });
    });
  }

  it('where with a number branch and a mask of another rank', () => {
    kx.tidy(() => {
      const x = kx.tensor([1, 2, 3, 4, 5, 6], [2, 3]);
      const mask = kx.tensor(new Uint8Array([1, 0, 1]), [3]);
      expect(Array.from(kx.where(mask, x, -Infinity).toFloat32Array())).toEqual([1, -Infinity, 3, 4, -Infinity, 6]);
      expect(Array.from(kx.where(mask, 0, x).toFloat32Array())).toEqual([0, 2, 0, 0, 5, 0]);
      const h = kx.where(mask, kx.cast(x, 'bfloat16'), 7);
      expect(h.dtype).toBe('bfloat16');
      expect(Array.from(h.toFloat32Array())).toEqual([1, 7, 3, 4, 7, 6]);
      expect(kx.where(kx.zeros([0], { dtype: 'uint8' }), kx.zeros([0]), 1).shape).toEqual([0]);
    });
  });

  it('broadcastTo: forward, gradient, any dtype, and identity', () => {
    kx.tidy(() => {
      const x = fx.get('bto.x');
      const y = kx.broadcastTo(x, [2, 3, 4, 5]);
      expect(Array.from(y.toFloat32Array())).toEqual(Array.from(fx.get('bto.y').toFloat32Array()));
      const [dx] = kx.grad(([p]) => kx.sum(kx.mul(kx.broadcastTo(p!, [2, 3, 4, 5]), fx.get('bto.w'))), [x]);
      checkClose(dx!, fx.get('bto.dx'), tolerance('float32', 'reduction'), 'broadcastTo grad', 'bto dx');
      const m = kx.broadcastTo(kx.tensor(new Uint8Array([1, 0]), [2, 1]), [2, 3]);
      expect(m.dtype).toBe('uint8');
      expect(Array.from(m.dataSync())).toEqual([1, 1, 1, 0, 0, 0]);
      const ids = kx.broadcastTo(kx.tensor(new Int32Array([7, -8, 9])), [2, 3]);
      expect(Array.from(ids.dataSync())).toEqual([7, -8, 9, 7, -8, 9]);
      const h = kx.broadcastTo(kx.cast(kx.scalar(1.5), 'float16'), [3]);
      expect(Array.from(h.toFloat32Array())).toEqual([1.5, 1.5, 1.5]);
      expect(kx.broadcastTo(x, [3, 1, 5])).toBe(x);
      expect(kx.broadcastTo(x, [0, 3, 0, 5]).shape).toEqual([0, 3, 0, 5]);
    });
  });
});

describe('gradients by finite differences', () => {
  const opts = { eps: 1e-2, atol: 2e-3, rtol: 1e-2 };
  it('binary ops under broadcasting', () => {
    kx.tidy(() => {
      const a = randomTensor([3, 1, 5], 21);
      const b = kx.add(kx.pow(randomTensor([4, 1], 22), 2), 0.5);
      const w = randomTensor([3, 4, 5], 23);
      for (const op of Object.values(BINARY)) {
        expectGradOk((p, q) => kx.sum(kx.mul(op(p!, q!), w)), [a, b], opts);
      }
      expectGradOk((p) => kx.sum(kx.mul(kx.div(2, p!), w)), [b], opts);
      expectGradOk((p) => kx.sum(kx.mul(kx.sub(1, p!), w)), [a], opts);
    });
  });

  it('where and broadcastTo', () => {
    kx.tidy(() => {
      const cond = kx.tensor(new Uint8Array([1, 0, 0, 1, 1]), [5]);
      const a = randomTensor([3, 5], 31);
      const b = randomTensor([3, 1], 32);
      const w = randomTensor([3, 5], 33);
      expectGradOk((p, q) => kx.sum(kx.mul(kx.where(cond, p!, q!), w)), [a, b], opts);
      expectGradOk((p) => kx.sum(kx.mul(kx.broadcastTo(p!, [2, 3, 5]), randomTensor([2, 3, 5], 34))), [b], opts);
    });
  });

  const unaries: Array<[string, (x: kx.Tensor) => kx.Tensor, 'any' | 'positive' | 'nonzero']> = [
    ['neg', kx.neg, 'any'],
    ['exp', kx.exp, 'any'],
    ['log', kx.log, 'positive'],
    ['sqrt', kx.sqrt, 'positive'],
    ['rsqrt', kx.rsqrt, 'positive'],
    ['tanh', kx.tanh, 'any'],
    ['sigmoid', kx.sigmoid, 'any'],
    ['relu', kx.relu, 'nonzero'],
    ['silu', kx.silu, 'any'],
    ['gelu', (x) => kx.gelu(x), 'any'],
    ['gelu tanh', (x) => kx.gelu(x, { approximate: 'tanh' }), 'any'],
    ['pow 3', (x) => kx.pow(x, 3), 'any'],
    ['pow -0.7', (x) => kx.pow(x, -0.7), 'positive'],
  ];
  for (const [name, f, domain] of unaries) {
    it(name, () => {
      kx.tidy(() => {
        let x = randomTensor([37], 41, 2);
        // log/sqrt/rsqrt/pow on [0.5, 2.5]; relu at least 0.1 away from its kink.
        if (domain === 'positive') x = kx.add(kx.div(x, 2), 1.5);
        if (domain === 'nonzero') x = kx.tensor(x.toFloat32Array().map((v) => (v < 0 ? v - 0.1 : v + 0.1)));
        const w = randomTensor([37], 42);
        expectGradOk((p) => kx.sum(kx.mul(f(p!), w)), [x], opts);
      });
    });
  }
});

describe('scalars and memory', () => {
  it('a number operand takes the tensor dtype and is freed after the call', () => {
    kx.tidy(() => {
      const x = kx.cast(kx.tensor([1, 2, 3]), 'bfloat16');
      const before = kx.memory().tensors;
      const y = kx.add(2, x);
      expect(kx.memory().tensors).toBe(before + 1);
      expect(y.dtype).toBe('bfloat16');
      expect(Array.from(y.toFloat32Array())).toEqual([3, 4, 5]);
      expect(Array.from(kx.div(1, kx.tensor([2, 4])).toFloat32Array())).toEqual([0.5, 0.25]);
      expect(Array.from(kx.sub(kx.tensor([2, 4]), 1).toFloat32Array())).toEqual([1, 3]);
    });
  });
});

describe('errors', () => {
  it('rejects shapes that do not broadcast (E_SHAPE), in TS and natively', () => {
    kx.tidy(() => {
      const a = kx.zeros([2, 3]);
      const b = kx.zeros([4]);
      expectCode(() => kx.add(a, b), 'E_SHAPE');
      expectCode(() => kx.where(kx.zeros([5], { dtype: 'uint8' }), a, a), 'E_SHAPE');
      expectCode(() => kx.broadcastTo(a, [3, 3]), 'E_SHAPE');
      expectCode(() => kx.broadcastTo(a, [3]), 'E_SHAPE');
      expectCode(() => kx.runKernel('mul', [a, b]), 'E_SHAPE');
      expectCode(() => kx.runKernel('broadcast_to', [a], { shape: [2, 4] }), 'E_SHAPE');
      expectCode(() => kx.runKernel('unary_backward', [a, a, b], { fn: 'exp' }), 'E_SHAPE');
    });
  });

  it('rejects wrong dtypes (E_DTYPE), in TS and natively', () => {
    kx.tidy(() => {
      const i = kx.tensor(new Int32Array([1, 2]));
      const f = kx.tensor([1, 2]);
      const h = kx.cast(f, 'float16');
      expectCode(() => kx.add(i, i), 'E_DTYPE');
      expectCode(() => kx.add(f, i), 'E_DTYPE');
      expectCode(() => kx.add(h, f), 'E_DTYPE');
      expectCode(() => kx.mul(kx.cast(f, 'bfloat16'), h), 'E_DTYPE');
      expectCode(() => kx.exp(i), 'E_DTYPE');
      expectCode(() => kx.where(f, f, f), 'E_DTYPE');
      expectCode(() => kx.where(kx.cast(f, 'int32'), f, f), 'E_DTYPE');
      expectCode(() => kx.where(kx.cast(f, 'uint8'), h, f), 'E_DTYPE');
      expectCode(() => kx.runKernel('add', [h, f]), 'E_DTYPE');
      expectCode(() => kx.runKernel('where', [kx.cast(f, 'uint8'), h, f]), 'E_DTYPE');
    });
  });

  it('rejects bad arguments (E_ARG)', () => {
    kx.tidy(() => {
      const f = kx.tensor([1, 2]);
      expectCode(() => kx.add(1, 2), 'E_ARG');
      expectCode(() => kx.add(f, 'x' as unknown as number), 'E_ARG');
      expectCode(() => kx.gelu(f, { approximate: 'erf' as 'none' }), 'E_ARG');
      expectCode(() => kx.pow(f, '2' as unknown as number), 'E_ARG');
      expectCode(() => kx.broadcastTo(f, [2, -1]), 'E_ARG');
      expectCode(() => kx.runKernel('unary', [f], { fn: 'cosh' }), 'E_ARG');
      expectCode(() => kx.runKernel('unary', [f], { fn: 'gelu', approximate: 'sigmoid' }), 'E_ARG');
    });
  });
});
