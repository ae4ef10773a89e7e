/**
 * How the CPU's executors of fused groups run a program across its replays
 * (native/ops/fused_group/): the block interpreter holds a one-element input as one value (read as
 * an immediate by the arithmetic, filled into a block once per part for the operands that need a
 * block), which must give the bits of the same input broadcast to the full shape, in every operand
 * position, as an output, and as the value a reduction reduces; and the emitter keeps each
 * program's kernel after its first run, which must stay that program's through many replays
 * interleaved with another program of the same structure (one kernel between them, each with its
 * own immediates). Runs under whichever executor the process has (KEXUE_FUSION).
 */
import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { native, type NativeGroupSpec } from '../src/native.js';
import { Tensor } from '../src/tensor.js';

import { Rng } from './parity_cases.js';

// plan.h's GroupOp and ops/elementwise/math.h's UnaryFn numbering.
const OP = { load: 0, add: 2, mul: 4, mulAdd: 6, negMulAdd: 8, where: 9, unary: 10, unaryGrad: 11, reduce: 12 } as const;
const FN = { exp: 1, tanh: 5 } as const;
const bitsOf = (x: number) => new Uint32Array(Float32Array.of(x).buffer)[0]!;

/** One instruction's six integers. */
function ins(op: number, dst: number, a = -1, b = -1, c = -1, imm = 0, fn = 0): number[] {
  return [op | (fn << 8), dst, a, b, c, bitsOf(imm)];
}

/** Runs a group alone (a one-step program) on CPU tensors: its outputs' float32 bits. */
function runBits(group: NativeGroupSpec, inputs: readonly kx.Tensor[]): Uint32Array[] {
  const n = inputs.length;
  const k = group.outputs.length;
  const ids = (count: number, from: number) => Array.from({ length: count }, (_, i) => from + i);
  const program = native.programCreate({ inputs: n, constants: [], steps: [{ group, inputs: ids(n, 0), outputs: k }], outputs: ids(k, n) });
  try {
    return native.programRun(program, inputs.map((t) => t.handle)).map((raw) => {
      const t = new Tensor(raw);
      const bits = new Uint32Array(t.toFloat32Array().buffer);
      t.dispose();
      return bits;
    });
  } finally {
    native.programDispose(program);
  }
}

function randomTensor(rng: Rng, shape: number[]): kx.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return kx.tensor(Float32Array.from({ length: n }, () => 3 * rng.uniform() - 1.5), shape);
}

/** Input 1 as one element ([1]) and the same value broadcast to `full`: the group's bits must agree. */
function expectScalarAsBroadcast(group: NativeGroupSpec, x: kx.Tensor, value: number, full: number[]): void {
  const one = kx.tensor([value], [1]);
  const wide = kx.tensor(new Float32Array(full.reduce((a, b) => a * b, 1)).fill(value), full);
  try {
    const got = runBits(group, [x, one]);
    const want = runBits(group, [x, wide]);
    expect(got.length).toBe(want.length);
    got.forEach((g, k) => expect(Buffer.from(g.buffer).equals(Buffer.from(want[k]!.buffer)), `output ${k}`).toBe(true));
  } finally {
    kx.dispose([one, wide]);
  }
}

describe('kx.compile: fused groups across blocks and replays (CPU)', () => {
  it('a one-element input gives the bits of its broadcast in every operand position', () => {
    const rng = new Rng(18);
    // several blocks, a partial last one, more than one thread's part
    const n = 70_001;
    const x = randomTensor(rng, [n]);
    const s = 0.75;
    const code = [
      ...ins(OP.load, 0, 0),
      ...ins(OP.load, 1, 1),
      ...ins(OP.mulAdd, 2, 1, 0, 0), // s·x + x: the multiplicand a one value
      ...ins(OP.mulAdd, 3, 0, 1, 1), // x·s + s: multiplier and addend one value
      ...ins(OP.negMulAdd, 4, 1, -1, 1, 0.5), // s − s·0.5
      ...ins(OP.where, 5, 1, 2, 3), // the condition one value
      ...ins(OP.where, 6, 0, 1, 4), // a branch one value
      ...ins(OP.unary, 7, 1, -1, -1, 0, FN.exp),
      ...ins(OP.unaryGrad, 8, 1, 7, 0, 0, FN.tanh),
      ...ins(OP.add, 9, 5, 6),
      ...ins(OP.mul, 10, 9, 7),
      ...ins(OP.add, 11, 10, 8),
      ...ins(OP.add, 12, 1, 1), // both operands one value
    ];
    const group: NativeGroupSpec = { code, inputs: 2, outputs: [11, 1, 4, 12], shape: [n], dtype: 'float32' };
    try {
      expectScalarAsBroadcast(group, x, s, [n]);
      expectScalarAsBroadcast(group, x, 0, [n]);
    } finally {
      x.dispose();
    }
  });

  it('a reduction of a one-element input (its prologue and epilogue) gives the bits of its broadcast', () => {
    const rng = new Rng(19);
    for (const [outer, rows] of [[300, 100], [3, 70_000]] as const) {
      const x = randomTensor(rng, [outer, rows]);
      for (const op of ['sum', 'max'] as const) {
        const code = [
          ...ins(OP.load, 0, 1),
          ...ins(OP.reduce, 1, 0),
          ...ins(OP.load, 2, 1), // the epilogue loads it too
          ...ins(OP.load, 3, 0),
          ...ins(OP.mulAdd, 4, 2, 1, 3),
        ];
        const group: NativeGroupSpec = { code, inputs: 2, outputs: [4, 1], shape: [outer, rows], dtype: 'float32', reduce: { op, rows, shape: [outer, 1] } };
        const xr = kx.tensor(x.toFloat32Array().subarray(0, outer), [outer, 1]);
        try {
          const one = kx.tensor([1.25], [1]);
          const wide = kx.tensor(new Float32Array(outer * rows).fill(1.25), [outer, rows]);
          const narrow = kx.tensor(new Float32Array(outer).fill(1.25), [outer, 1]);
          // (the prologue's copy broadcasts to [outer, rows], the epilogue's to [outer, 1]: one tensor
          // of one element serves both, so compare with the epilogue reading a broadcast column)
          const got = runBits(group, [xr, one]);
          const wantSum = runBits({ ...group, code: [...ins(OP.load, 0, 1), ...ins(OP.reduce, 1, 0)], outputs: [1] }, [xr, wide]);
          const wantEpilogue = runBits(group, [xr, narrow]);
          expect(Buffer.from(got[1]!.buffer).equals(Buffer.from(wantSum[0]!.buffer)), `${op} ${outer}x${rows}`).toBe(true);
          expect(Buffer.from(got[0]!.buffer).equals(Buffer.from(wantEpilogue[0]!.buffer)), `${op} ${outer}x${rows}`).toBe(true);
          kx.dispose([one, wide, narrow]);
        } finally {
          xr.dispose();
        }
      }
      x.dispose();
    }
  });

  it('a program keeps its kernel through many replays, interleaved with programs of the same and of another structure', () => {
    const rng = new Rng(20);
    const [rows, cols] = [64, 1024];
    const [a, b] = [randomTensor(rng, [rows, cols]), randomTensor(rng, [rows, cols])];
    // (x + y + y)·s rounds as eager (no multiply-add to contract): the compiled bits are eager's
    const scaled = (s: number) => (x: kx.Tensor, y: kx.Tensor) => kx.mul(kx.add(kx.add(x, y), y), s);
    const divided = (x: kx.Tensor, y: kx.Tensor) => kx.div(kx.add(kx.add(x, y), y), 3);
    const [f, g, h] = [kx.compile(scaled(0.5)), kx.compile(scaled(3)), kx.compile(divided)];
    const bits = (t: kx.Tensor) => Buffer.from(t.toFloat32Array().buffer);
    try {
      const [wantF, wantG, wantH] = kx.tidy(() => [bits(scaled(0.5)(a, b)), bits(scaled(3)(a, b)), bits(divided(a, b))]);
      // (the first calls trace, the second make the kernels)
      for (let i = 0; i < 2; ++i) kx.tidy(() => void [f(a, b), g(a, b), h(a, b)]);
      const before = native.fusionStats();
      const replays = 40;
      for (let i = 0; i < replays; ++i) {
        kx.tidy(() => {
          expect(bits(f(a, b)).equals(wantF!), `f, replay ${i}`).toBe(true);
          expect(bits(g(a, b)).equals(wantG!), `g, replay ${i}`).toBe(true);
          expect(bits(h(a, b)).equals(wantH!), `h, replay ${i}`).toBe(true);
        });
      }
      const after = native.fusionStats();
      expect([f, g, h].map((c) => c.plan(a, b)!.groups.length)).toEqual([1, 1, 1]);
      // (every replay runs the one group)
      const runs = after.emitted - before.emitted + after.interpreted - before.interpreted;
      expect(runs).toBe(3 * replays);
      if (after.executor !== 'interp') {
        expect(after.emitted - before.emitted).toBe(runs);
        // (f and g share one structure, h has another: both made before)
        expect(after.kernels).toBe(before.kernels);
      }
    } finally {
      kx.dispose([a, b]);
    }
  });
});
