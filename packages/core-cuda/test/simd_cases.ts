// Run by simd_dispatch.test.ts in a child process, under one KEXUE_SIMD cap (the target is chosen
// once, when the addon loads): runs the CPU ops that go through the vector runs of kx/simd.h on
// edge values and random data, and prints one JSON line: the dispatched target, each case's worst
// error against a float64 reference in units of its bound (<= 1 passes; a non-finite mismatch is
// Infinity) and the float16 conversions' bits.
import * as kx from '../src/index.js';

/** A deterministic uniform generator (mulberry32), so that every target sees the same inputs. */
function uniform(seed: number): (lo: number, hi: number) => number {
  let s = seed >>> 0;
  return (lo, hi) => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return lo + (hi - lo) * (((t ^ (t >>> 14)) >>> 0) / 4294967296);
  };
}

/** The spacing of float32 at |v| (2^-149 among subnormals). */
function ulp(v: number): number {
  const a = Math.abs(v);
  if (a < 2 ** -126) return 2 ** -149;
  return 2 ** (Math.floor(Math.log2(a)) - 23);
}

/** Worst |a - e| / (ulps·ulp(e) + atol_i) over the elements; non-finite values must match exactly. */
function worst(actual: Float32Array, expected: number[], ulps: number, atol: (i: number) => number): number {
  let w = 0;
  for (let i = 0; i < expected.length; ++i) {
    const a = actual[i]!;
    const e = Math.fround(expected[i]!);  // float32's overflow to infinity included
    if (!Number.isFinite(e) || !Number.isFinite(a)) {
      if (!Object.is(a, e) && !(Number.isNaN(a) && Number.isNaN(e))) return Infinity;
      continue;
    }
    w = Math.max(w, Math.abs(a - e) / (ulps * ulp(e) + atol(i)));
  }
  return w;
}

// Edge values: zeros, the ends of exp's clamp and of float32, subnormal results, the tanh branch
// point, NaN and infinities; then random values. Lengths are not multiples of any vector width.
const EDGES = [
  0, -0, 1, -1, 1e-30, -1e-30, 1e-40, 0.5, 0.6249999, 0.625, -0.625, 2, -3, 5, -5, 9, -9.5, 10, -10, 15, -15, 20, -30,
  40, -60, 87.3, 88.72, 88.73, 89, 100, -87.3, -88.8, -95, -100, -103.9, -104, -110, -150, Infinity, -Infinity, NaN,
];
const rand = uniform(7);
function inputs(lo: number, hi: number, n = 1013): number[] {
  return [...EDGES, ...Array.from({ length: n }, () => rand(lo, hi))].map(Math.fround);
}

const SQRT1_2 = Math.SQRT1_2;
/** erf in float64 (Abramowitz-Stegun 7.1.26 is not precise enough for a reference: a series and a continued fraction). */
function erf(x: number): number {
  if (!Number.isFinite(x)) return Number.isNaN(x) ? NaN : Math.sign(x);
  const a = Math.abs(x);
  if (a < 2.5) {
    let term = a, sum = a;
    for (let k = 1; k < 200; ++k) {
      term *= (-a * a) / k;
      const add = term / (2 * k + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(a) = exp(-a^2)/sqrt(pi) / (a + 1/2 / (a + 1 / (a + 3/2 / (a + 2 / (a + ...)))))
  let f = 0;
  for (let k = 60; k >= 1; --k) f = (k / 2) / (a + f);
  const erfc = Math.exp(-a * a) / Math.sqrt(Math.PI) / (a + f);
  return Math.sign(x) * (1 - erfc);
}
const phi = (x: number) => 0.5 * (1 + erf(x * SQRT1_2));
const pdf = (x: number) => Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
const K = Math.sqrt(2 / Math.PI);
const geluTanh = (x: number) => 0.5 * x * (1 + Math.tanh(K * (x + 0.044715 * x ** 3)));
const geluTanhGrad = (x: number) => {
  const t = Math.tanh(K * (x + 0.044715 * x ** 3));
  return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * K * (1 + 3 * 0.044715 * x * x);
};
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const fnOf = (x: number) => (Number.isNaN(x) ? NaN : x);

interface UnaryCase {
  fn: string;
  approximate?: string;
  lo: number;
  hi: number;
  f: (x: number) => number;
  /** f' for the backward runs, where the backward takes x (not y). */
  df?: (x: number) => number;
  ulps: number;
  /** Absolute slack at x: accuracy stated in absolute terms (GELU's Phi) or results below float32's normal range. */
  atol: (x: number) => number;
  dulps?: number;
  datol?: (x: number) => number;
}

const TINY = 2 ** -126;
const CASES: UnaryCase[] = [
  { fn: 'exp', lo: -110, hi: 90, f: Math.exp, ulps: 2, atol: () => 0 },
  { fn: 'tanh', lo: -12, hi: 12, f: Math.tanh, ulps: 4, atol: () => 0 },
  { fn: 'sigmoid', lo: -100, hi: 30, f: sigmoid, ulps: 4, atol: () => TINY },
  {
    fn: 'silu', lo: -100, hi: 30, f: (x) => x * sigmoid(x), df: (x) => sigmoid(x) * (1 + x * (1 - sigmoid(x))),
    ulps: 4, atol: (x) => Math.abs(x) * TINY, dulps: 8, datol: (x) => 2e-7 * Math.max(1, Math.abs(x)),
  },
  {
    fn: 'gelu', lo: -12, hi: 12, f: (x) => x * phi(x), df: (x) => phi(x) + x * pdf(x),
    ulps: 4, atol: (x) => 3e-7 * Math.abs(x), dulps: 8, datol: (x) => 4e-7 * Math.max(1, Math.abs(x)),
  },
  {
    fn: 'gelu', approximate: 'tanh', lo: -12, hi: 12, f: geluTanh, df: geluTanhGrad,
    ulps: 4, atol: (x) => 3e-7 * Math.abs(x), dulps: 8, datol: (x) => 3e-7 * Math.max(1, Math.abs(x) ** 3),
  },
];

const errors: Record<string, number> = {};
function record(name: string, w: number): void {
  errors[name] = Math.max(errors[name] ?? 0, w);
}

for (const c of CASES) {
  const name = c.approximate ? `${c.fn}(${c.approximate})` : c.fn;
  const xs = inputs(c.lo, c.hi);
  const x = kx.tensor(Float32Array.from(xs), [xs.length]);
  const attrs = { fn: c.fn, approximate: c.approximate ?? 'none' };
  const y = kx.runKernel('unary', [x], attrs)[0]!;
  record(name, worst(y.toFloat32Array(), xs.map((v) => fnOf(c.f(v))), c.ulps, (i) => c.atol(xs[i]!)));
  // bias_gelu: the same run after x + bias, in rows whose length is not a multiple of its blocks
  if (c.fn === 'gelu') {
    const d = 67;
    const rows = Math.floor(xs.length / d);
    const xb = kx.tensor(Float32Array.from(xs.slice(0, rows * d)), [rows, d]);
    const bias = kx.tensor(Float32Array.from({ length: d }, (_, i) => Math.fround(0.01 * (i % 5))), [d]);
    const z = Array.from({ length: rows * d }, (_, i) => Math.fround(xs[i]! + Math.fround(0.01 * ((i % d) % 5))));
    const yb = kx.runKernel('bias_gelu', [xb, bias], { approximate: c.approximate ?? 'none' })[0]!;
    record(`bias_${name}`, worst(yb.toFloat32Array(), z.map((v) => fnOf(c.f(v))), c.ulps, (i) => c.atol(z[i]!)));
    if (c.df) {
      const dy = Array.from({ length: rows * d }, () => Math.fround(rand(0.5, 2)));
      const dyt = kx.tensor(Float32Array.from(dy), [rows, d]);
      const dx = kx.runKernel('bias_gelu_backward', [dyt, xb, bias], { approximate: c.approximate ?? 'none' })[0]!;
      const expected = z.map((v, i) => fnOf(dy[i]! * c.df!(v)));
      record(`bias_${name}_backward`, worst(dx.toFloat32Array(), expected, c.dulps!, (i) => dy[i]! * c.datol!(z[i]!)));
    }
  }
  if (c.df) {
    const finite = xs.filter(Number.isFinite);
    const xf = kx.tensor(Float32Array.from(finite), [finite.length]);
    const dy = finite.map(() => Math.fround(rand(0.5, 2)));
    const yf = kx.runKernel('unary', [xf], attrs)[0]!;
    const dx = kx.runKernel('unary_backward', [xf, yf, kx.tensor(Float32Array.from(dy), [dy.length])], attrs)[0]!;
    const expected = finite.map((v, i) => dy[i]! * c.df!(v));
    record(`${name}_backward`, worst(dx.toFloat32Array(), expected, c.dulps!, (i) => dy[i]! * c.datol!(finite[i]!)));
  }
}

// Softmax rows (the exp run with a shift), log-softmax and cross-entropy, over rows of odd lengths
// with masked (-inf) entries, plus a row of all -inf (NaN, as PyTorch).
function softmax64(row: number[]): number[] {
  const m = Math.max(...row);
  const e = row.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}
for (const n of [1, 7, 17, 1003, 21131]) {
  const rows = 3;
  const data: number[] = [];
  for (let r = 0; r < rows; ++r)
    for (let i = 0; i < n; ++i) data.push(i % 11 === 3 && n > 1 ? -Infinity : Math.fround(rand(-30, 30)));
  const x = kx.tensor(Float32Array.from(data), [rows, n]);
  const sm = kx.softmax(x).toFloat32Array();
  const lsm = kx.logSoftmax(x).toFloat32Array();
  const labels = kx.tensor(Int32Array.from({ length: rows }, (_, r) => (r * 5) % n), [rows], { dtype: 'int32' });
  const [loss, dlogits] = kx.runKernel('cross_entropy', [x, labels], { ignoreIndex: -100, dloss: 1 });
  let lossSum = 0;
  for (let r = 0; r < rows; ++r) {
    const row = data.slice(r * n, (r + 1) * n);
    const p = softmax64(row);
    const label = (r * 5) % n;
    lossSum -= Math.log(p[label]!);
    // A few ulps of each element, plus what float32 loses in rounding x - max (relative error
    // |x - max|·2^-24 in exp(x - max), as in every float32 softmax); the pairwise sum adds little.
    const m = Math.max(...row);
    const shifted = (i: number) => (p[i] === 0 ? 0 : p[i]! * Math.abs(row[i]! - m) * 2 ** -23);
    record('softmax', worst(sm.subarray(r * n, (r + 1) * n), p, 8, shifted));
    record('log_softmax', worst(lsm.subarray(r * n, (r + 1) * n), p.map(Math.log), 8, () => 1e-6));
    const g = p.map((v, i) => (v - (i === label ? 1 : 0)) / rows);
    // (at the label, softmax - 1 cancels: an ulp of the scale 1/rows)
    const labelUlp = (i: number) => (i === label ? 2 ** -23 / rows : 0);
    record('cross_entropy_backward', worst(dlogits!.toFloat32Array().subarray(r * n, (r + 1) * n), g, 8, (i) => shifted(i) / rows + labelUlp(i)));
  }
  record('cross_entropy', worst(loss!.toFloat32Array(), [lossSum / rows], 8, () => 1e-6));
}
const masked = kx.tensor(Float32Array.from([-Infinity, -Infinity, -Infinity]), [1, 3]);
record('softmax', worst(kx.softmax(masked).toFloat32Array(), [NaN, NaN, NaN], 1, () => 0));

// Attention (online softmax over key blocks, and the backward's recomputed probabilities) against
// softmax(q k^T / sqrt(d)) v in float64, with a causal mask.
{
  const [T, S, d] = [37, 141, 8];
  const q = Array.from({ length: T * d }, () => Math.fround(rand(-2, 2)));
  const k = Array.from({ length: S * d }, () => Math.fround(rand(-2, 2)));
  const v = Array.from({ length: S * d }, () => Math.fround(rand(-2, 2)));
  const tq = kx.tensor(Float32Array.from(q), [1, 1, T, d]);
  const out = kx.attention(tq, kx.tensor(Float32Array.from(k), [1, 1, S, d]), kx.tensor(Float32Array.from(v), [1, 1, S, d]), { causal: true });
  const expected: number[] = [];
  for (let i = 0; i < T; ++i) {
    const visible = i + S - T;  // bottom-right aligned
    const s = Array.from({ length: visible + 1 }, (_, j) => {
      let dot = 0;
      for (let c = 0; c < d; ++c) dot += q[i * d + c]! * k[j * d + c]!;
      return dot / Math.sqrt(d);
    });
    const p = softmax64(s);
    for (let c = 0; c < d; ++c) expected.push(p.reduce((acc, pj, j) => acc + pj * v[j * d + c]!, 0));
  }
  record('attention', worst(out.toFloat32Array(), expected, 16, () => 1e-6));
}

// float16: every half widened, and floats (ties, the ends of the range, subnormals, NaN) narrowed;
// their bits are compared across targets by the test.
const halves = kx.tensor(Uint16Array.from({ length: 65536 }, (_, i) => i), [65536], { dtype: 'float16' });
const widened = kx.cast(halves, 'float32').toFloat32Array();
const narrowInput = Float32Array.from(
  [...EDGES, 65504, 65519.99, 65520, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 1 + 2 ** -11, 1 + 3 * 2 ** -11, ...Array.from({ length: 2000 }, () => rand(-70000, 70000) * rand(0, 1) ** 8)],
);
const narrowed = kx.cast(kx.tensor(narrowInput, [narrowInput.length]), 'float16').dataSync() as Uint16Array;
const hash = (bytes: Uint8Array) => bytes.reduce((h, b) => Math.imul(h ^ b, 16777619) >>> 0, 2166136261);

console.log(
  JSON.stringify({
    target: kx.buildInfo().simd,
    f16c: kx.buildInfo().f16c,
    errors,
    widenedBits: hash(new Uint8Array(widened.buffer, widened.byteOffset, widened.byteLength)),
    narrowedBits: hash(new Uint8Array(narrowed.buffer, narrowed.byteOffset, narrowed.byteLength)),
  }),
);
