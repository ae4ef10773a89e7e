// Run by compile_emitter.test.ts in a child process under one KEXUE_FUSION and KEXUE_SIMD (both
// read once per process): compiled groups the emitter supports (E1 with a bias row and a tail, in
// float32, float16 and bfloat16; AdamW in plain ops; select/relu/neg/rsqrt with a uint8 mask; a
// program with more live registers than AVX2 has; NaN and overflow narrowed to halves; [rows, 1]
// columns; the
// exponential, sigmoid, SiLU, tanh and the GELUs, with special values; every unary derivative the
// emitter writes, in each dtype, on special values, subnormals and NaNs of both signs; a compiled
// MLP training step) and one it leaves to the interpreter (log), each against eager. Prints one JSON
// line: the executor, per case the groups each executor ran over two replays, the worst error
// relative to the largest eager value, and a hash of the replay's bits (equal across executors).
import * as kx from '../src/index.js';
import { native } from '../src/native.js';

import { adamwPlain as adamw } from './compile_helpers.js';

let seed = 7;
const next = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
const make = (shape: number[], lo = -1, hi = 1, dtype: kx.DType = 'float32') =>
  kx.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => lo + ((next() + 1) / 2) * (hi - lo)), shape, { dtype });

const e1 = (res: kx.Tensor, m: kx.Tensor, x: kx.Tensor, bias: kx.Tensor) => kx.add(res, kx.mul(kx.mul(m, kx.add(x, bias)), 0.3));

const select = (c: kx.Tensor, a: kx.Tensor, b: kx.Tensor) =>
  kx.where(c, kx.relu(kx.sub(a, b)), kx.neg(kx.rsqrt(kx.add(kx.mul(b, b), 0.5))));

// Thirteen products all live until the end: more registers than AVX2's eleven homes.
const wide = (...xs: kx.Tensor[]) => {
  const products = xs.map((x, i) => kx.mul(x, xs[(i + 1) % xs.length]!));
  return products.reduceRight((acc, p) => kx.add(kx.div(acc, kx.add(kx.mul(p, p), 1)), p));
};

// NaN (sqrt of a negative) and, in float16, overflow to infinity: how each executor narrows them.
const specials = (a: kx.Tensor, b: kx.Tensor) => kx.mul(kx.sqrt(kx.add(kx.mul(a, b), a)), 300);

const transcendental = (a: kx.Tensor, b: kx.Tensor) => kx.add(kx.tanh(kx.mul(a, b)), kx.mul(a, 2));

// Both GELUs, beside tanh: what the emitter writes from the exponential.
const gelus = (a: kx.Tensor, b: kx.Tensor) => kx.add(kx.gelu(a), kx.mul(kx.gelu(b, { approximate: 'tanh' }), 0.5));

// log is not emitted: its group falls back to the interpreter.
const logarithm = (a: kx.Tensor, b: kx.Tensor) => kx.add(kx.log(kx.add(kx.mul(a, a), 1)), kx.mul(b, 2));

// A row normalised by per-row statistics ([rows, 1] columns) and scaled by a [cols] row.
const normalise = (x: kx.Tensor, mean: kx.Tensor, rstd: kx.Tensor, g: kx.Tensor) => kx.mul(kx.mul(kx.sub(x, mean), rstd), g);

// The exponential's family, which the emitter writes: e^a near both clamps (subnormal results
// included), sigmoid and SiLU of b.
const expFamily = (a: kx.Tensor, b: kx.Tensor) => kx.add(kx.mul(kx.exp(a), 0.5), kx.add(kx.sigmoid(b), kx.silu(b)));

// The unary derivatives the emitter writes (dx = dy f'(x, y), y = f(x)), each in a group of its own
// (doubled, then halved: a group needs three ops; each scaling exact but past the range's ends),
// the GELUs' also together with a tanh.
const gradFns: Record<string, Record<string, string>> = {
  neg: { fn: 'neg' }, exp: { fn: 'exp' }, log: { fn: 'log' }, sqrt: { fn: 'sqrt' }, rsqrt: { fn: 'rsqrt' }, tanh: { fn: 'tanh' },
  sigmoid: { fn: 'sigmoid' }, relu: { fn: 'relu' }, silu: { fn: 'silu' }, gelu: { fn: 'gelu' }, geluTanh: { fn: 'gelu', approximate: 'tanh' },
};
const unaryGrad = (attrs: Record<string, string>) => (x: kx.Tensor, y: kx.Tensor, dy: kx.Tensor) =>
  kx.mul(kx.mul(kx.runKernel('unary_backward', [x, y, dy], attrs)[0]!, 2), 0.5);
const geluGrads = (x: kx.Tensor, dy: kx.Tensor) =>
  kx.add(kx.runKernel('unary_backward', [x, x, dy], { fn: 'gelu' })[0]!, kx.tanh(kx.runKernel('unary_backward', [x, x, dy], { fn: 'gelu', approximate: 'tanh' })[0]!));

// One SGD step (weight decay 0.01, rate 0.1) of a two-layer MLP, tanh(gelu(x W1 / 2)) then tanh,
// summed by matmuls (no reduction op, so that every group is one the emitter can take): the
// forward's groups, the backward's chains of unary derivatives, the updates. Returns the loss and
// both new weights.
const mlpStep = (x: kx.Tensor, w1: kx.Tensor, w2: kx.Tensor, v: kx.Tensor, ones: kx.Tensor) => {
  const { value, grads } = kx.valueAndGrad(([a, b]) => {
    const h = kx.tanh(kx.gelu(kx.mul(kx.matmul(x, a!), 0.5)));
    const o = kx.tanh(kx.gelu(kx.mul(kx.matmul(h, b!), 0.5), { approximate: 'tanh' }));
    return kx.reshape(kx.matmul(ones, kx.matmul(o, v)), []);
  }, [w1, w2]);
  const update = (w: kx.Tensor, g: kx.Tensor) => kx.sub(w, kx.mul(kx.add(g, kx.mul(w, 0.01)), 0.1));
  return [value, update(w1, grads[0]!), update(w2, grads[1]!)];
};

function hash(arrays: Float32Array[]): number {
  let h = 0x811c9dc5;
  for (const a of arrays) for (const byte of new Uint8Array(a.buffer, a.byteOffset, a.byteLength)) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return h;
}

function run(fn: (...xs: kx.Tensor[]) => kx.Tensor | kx.Tensor[], args: kx.Tensor[]) {
  const list = (r: kx.Tensor | kx.Tensor[]) => (Array.isArray(r) ? r : [r]);
  const eager = list(fn(...args)).map((t) => t.toFloat32Array());
  const compiled = kx.compile(fn);
  kx.dispose(list(compiled(...args)));
  const before = native.fusionStats();
  kx.dispose(list(compiled(...args)));
  const outs = list(compiled(...args)).map((t) => t.toFloat32Array());
  const after = native.fusionStats();
  let err = 0;
  let scale = 0;
  outs.forEach((o, k) => {
    for (let i = 0; i < o.length; i++) {
      err = Math.max(err, Math.abs(o[i]! - eager[k]![i]!));
      scale = Math.max(scale, Math.abs(eager[k]![i]!));
    }
  });
  return {
    groups: compiled.plan(...args)!.groups.length,
    emitted: after.emitted - before.emitted,
    interpreted: after.interpreted - before.interpreted,
    error: err / scale,
    bits: hash(outs),
  };
}

const [rows, cols] = [37, 100]; // rows of 100: no multiple of any vector width
// Float32 subnormals (and their negatives), the smallest normal, and the largest finite values.
// NaNs of both signs, quiet and signalling, with payloads, beside finite values: with `shift`, x and
// dy hold different NaNs at one element (which of two NaNs an operation keeps depends on its
// operand order).
const nanBits = [0x7fc00001, 0xffc00002, 0x7fa00003, 0xff900004, 0x3f800000, 0xbf800000, 0x00000000, 0x80000000, 0x7f800000];
const nans = (shift: number) =>
  kx.tensor(new Float32Array(Uint32Array.from({ length: rows * cols }, (_, i) => nanBits[(i + shift * ((i / nanBits.length) | 0)) % nanBits.length]!).buffer), [rows, cols]);
const subnormals = () =>
  kx.tensor(Float32Array.from({ length: rows * cols }, (_, i) => [1e-40, -1e-40, 1.4e-45, -3e-39, 1.1754944e-38, 3.4e38, -3.4e38][i % 7]! * (1 + next() * 1e-2)), [rows, cols]);
const specialValues = () => {
  const specials = [NaN, Infinity, -Infinity, 200, -200, 89, -104, 88.7, -87.5, -0, 0, 1e-30];
  return kx.tensor(Float32Array.from({ length: rows * cols }, (_, i) => specials[i % specials.length]! * (i % 7 === 0 ? 1 : 1 + next() * 1e-3)), [rows, cols]);
};
const mask = kx.tensor(Float32Array.from({ length: rows * cols }, () => (next() > 0 ? 1 : 0)), [rows, cols]);
const cond = kx.tensor(Uint8Array.from({ length: rows * cols }, () => (next() > 0 ? 1 : 0)), [rows, cols], { dtype: 'uint8' });
const n = 1000;
const cases = {
  e1: run(e1, [make([rows, cols], 0.5, 1), mask, make([rows, cols], 0, 1), make([cols], 0, 1)]),
  e1Float16: run(e1, [make([rows, cols], 0.5, 1, 'float16'), mask.cast('float16'), make([rows, cols], 0, 1, 'float16'), make([cols], 0, 1, 'float16')]),
  e1BFloat16: run(e1, [make([rows, cols], 0.5, 1, 'bfloat16'), mask.cast('bfloat16'), make([rows, cols], 0, 1, 'bfloat16'), make([cols], 0, 1, 'bfloat16')]),
  adamw: run(adamw, [make([n]), make([n]), make([n], 0, 1), make([n]), kx.tensor([1e-3], []), kx.tensor([0.1], []), kx.tensor([0.001], [])]),
  select: run(select, [cond, make([rows, cols]), make([cols])]),
  wide: run(wide, Array.from({ length: 13 }, () => make([rows, cols], 0.5, 1))),
  specialsFloat16: run(specials, [make([rows, cols], -300, 300, 'float16'), make([rows, cols], -300, 300, 'float16')]),
  specialsBFloat16: run(specials, [make([rows, cols], -300, 300, 'bfloat16'), make([rows, cols], -300, 300, 'bfloat16')]),
  transcendental: run(transcendental, [make([rows, cols], -3, 3), make([rows, cols], -3, 3)]),
  gelus: run(gelus, [make([rows, cols], -12, 12), make([rows, cols], -12, 12)]),
  gelusSpecials: run(gelus, [specialValues(), specialValues()]),
  logarithm: run(logarithm, [make([rows, cols]), make([rows, cols])]),
  column: run(normalise, [make([rows, cols]), make([rows, 1]), make([rows, 1], 0.5, 2), make([cols])]),
  // columns of two widths (a [2, 1, 1] and a [2, 3, 1] over [2, 3, 80]) and a row
  column3d: run(normalise, [make([2, 3, 80]), make([2, 1, 1]), make([2, 3, 1], 0.5, 2), make([80])]),
  expFamily: run(expFamily, [make([rows, cols], -103, 88), make([rows, cols], -30, 30)]),
  // NaN, infinities and values past both clamps (compared by their bits)
  expSpecials: run(expFamily, [specialValues(), specialValues()]),
  geluGrads: run(geluGrads, [make([rows, cols], -12, 12), make([rows, cols])]),
  mlpStep: run(mlpStep, [make([64, 48], -2, 2), make([48, 96], -0.5, 0.5), make([96, 80], -0.5, 0.5), make([80, 1]), kx.ones([1, 64])]),
  ...gradCases('float32'),
  ...gradCases('float16'),
  ...gradCases('bfloat16'),
};

/**
 * Per derivative and dtype, a case on the special values and random ones (x and dy; y = f(x) eager,
 * so that each derivative reads the y it is meant for): named grad_<fn>_<dtype>.
 */
function gradCases(dtype: kx.DType) {
  const xs = kx.concat([specialValues(), make([rows, cols], -6, 6), make([rows, cols], 1e-3, 30), subnormals(), nans(0)], 0).cast(dtype);
  const dy = kx.concat([specialValues(), make([rows, cols], -2, 2), make([rows, cols], -2, 2), subnormals(), nans(1)], 0).cast(dtype);
  return Object.fromEntries(
    Object.entries(gradFns).map(([name, attrs]) => {
      const y = kx.runKernel('unary', [xs], attrs)[0]!;
      return [`grad_${name}_${dtype}`, run(unaryGrad(attrs), [xs, y, dy])];
    }),
  );
}
console.log(JSON.stringify({ executor: native.fusionStats().executor, target: kx.buildInfo().simd, cases }));
