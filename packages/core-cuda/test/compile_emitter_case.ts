// Run by compile_emitter.test.ts in a child process under one KEXUE_FUSION and KEXUE_SIMD (both
// read once per process): compiled groups the emitter supports (E1 with a bias row and a tail, in
// float32, float16 and bfloat16; AdamW in plain ops; select/relu/neg/rsqrt with a uint8 mask; a
// program with more live registers than AVX2 has; NaN and overflow narrowed to halves) and one it
// leaves to the interpreter (tanh), each against eager. Prints one JSON
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
  transcendental: run(transcendental, [make([rows, cols]), make([rows, cols])]),
};
console.log(JSON.stringify({ executor: native.fusionStats().executor, target: kx.buildInfo().simd, cases }));
