// Run by compile.test.ts in a child process under one KEXUE_SIMD cap (read once, when the addon
// loads): a fused group with every superinstruction (multiply-adds with a register and with an
// immediate multiplier, multiply-subtract, negated multiply-add, select), a transcendental and a
// unary derivative (GELU's, a vector run on every target but the scalar one),
// compiled and eager, on lengths that are no multiple of any vector width. Prints one JSON line:
// the dispatched target, the group's instructions and the worst error relative to the largest
// eager value.
import * as kx from '../src/index.js';

let s = 11;
const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
const make = (shape: number[]) => kx.tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, next), shape);

const f = (a: kx.Tensor, b: kx.Tensor, c: kx.Tensor, m: kx.Tensor) => {
  const t = kx.add(kx.mul(a, b), c); // a·b + c
  const u = kx.sub(kx.mul(t, 0.75), b); // t·0.75 − b
  const v = kx.sub(c, kx.mul(u, a)); // c − u·a
  const dv = kx.runKernel('unary_backward', [v, v, u], { fn: 'gelu' })[0]!; // u · gelu'(v)
  return kx.add(kx.where(m, kx.tanh(v), kx.add(kx.mul(v, v), a)), dv);
};
const shape = [37, 53];
const a = make(shape);
const b = make([53]);
const c = make(shape);
const m = kx.tensor(Uint8Array.from({ length: 37 }, () => (next() > 0 ? 1 : 0)), [37, 1], { dtype: 'uint8' });
const compiled = kx.compile(f);
const eager = f(a, b, c, m);
compiled(a, b, c, m);
const out = compiled(a, b, c, m);
const e = eager.toFloat32Array();
const o = out.toFloat32Array();
let err = 0;
let scale = 0;
for (let i = 0; i < e.length; i++) {
  err = Math.max(err, Math.abs(o[i]! - e[i]!));
  scale = Math.max(scale, Math.abs(e[i]!));
}
const plan = compiled.plan(a, b, c, m)!;
console.log(JSON.stringify({ target: kx.buildInfo().simd, groups: plan.groups.length, code: plan.groups[0]?.program.text ?? [], error: err / scale }));
