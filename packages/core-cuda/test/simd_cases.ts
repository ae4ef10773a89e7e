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

/** 0 when every element has the expected float32 bits (NaN matching NaN), else Infinity. */
function exact(actual: Float32Array | number[], expected: number[]): number {
  for (let i = 0; i < expected.length; ++i) {
    const a = actual[i]!, e = Math.fround(expected[i]!);
    if (!Object.is(a, e) && !(Number.isNaN(a) && Number.isNaN(e))) return Infinity;
  }
  return 0;
}
const f32 = (xs: number[]) => Float32Array.from(xs);
const randoms = (n: number, lo: number, hi: number) => Array.from({ length: n }, () => Math.fround(rand(lo, hi)));
const sumOf = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const absSum = (xs: number[]) => xs.reduce((a, b) => a + Math.abs(b), 0);
/** The relative error bound (of the sum of |terms|) of a float32 lane sum of n terms: n/32 adds per lane, the fold, the pairwise cascade. */
const sumBound = (n: number, perLane = Math.min(n, 256)) => (Math.ceil(perLane / 32) + 6 + Math.log2(Math.max(1, n / 256))) * 2 ** -24;
// Row lengths around every vector width and the reduction blocks (32 lanes, 256-element blocks).
const LENGTHS = [1, 3, 17, 31, 33, 255, 257, 1003, 4099];

// Binary arithmetic: one IEEE operation per element, so float32 results are exact, same-shaped
// operands and a scalar on either side, over edge values (infinities, NaN, signed zeros, subnormals).
{
  const edges = [...EDGES, 3e38, -3e38, 1e-45, -1e-45, 2 ** -126].map(Math.fround);
  const a = [...edges, ...randoms(1013, -50, 50)];
  const b = [...edges.slice().reverse(), ...randoms(1013, -50, 50)];
  const ta = kx.tensor(f32(a), [a.length]);
  const tb = kx.tensor(f32(b), [b.length]);
  const ops: Array<[string, (x: number, y: number) => number]> = [
    ['add', (x, y) => x + y], ['sub', (x, y) => x - y], ['mul', (x, y) => x * y], ['div', (x, y) => x / y],
  ];
  for (const [op, f] of ops) {
    const both = kx.runKernel(op, [ta, tb], {})[0]!.toFloat32Array();
    const s = Math.fround(-2.75);
    const ts = kx.tensor(f32([s]), []);
    const right = kx.runKernel(op, [ta, ts], {})[0]!.toFloat32Array();
    const left = kx.runKernel(op, [ts, tb], {})[0]!.toFloat32Array();
    record(`binary_${op}`, Math.max(exact(both, a.map((x, i) => f(x, b[i]!))), exact(right, a.map((x) => f(x, s))), exact(left, b.map((y) => f(s, y)))));
  }
}

// Sums and maxima of rows (the row runs: lane sums, the pairwise cascade) and of columns (the binary
// run's cascade), against float64; a max must be exact, NaN and -inf included.
for (const n of LENGTHS) {
  const rows = 3;
  const data = randoms(rows * n, -10, 10);
  if (n > 3) data[n + 2] = NaN;  // row 1 holds a NaN
  const x = kx.tensor(f32(data), [rows, n]);
  const sums = kx.sum(x, -1).toFloat32Array();
  const maxes = kx.max(x, -1).toFloat32Array();
  for (let r = 0; r < rows; ++r) {
    const row = data.slice(r * n, (r + 1) * n);
    record('sum_rows', worst(sums.subarray(r, r + 1), [sumOf(row)], 1, () => sumBound(n) * absSum(row)));
    record('max_rows', exact(maxes.subarray(r, r + 1), [row.some(Number.isNaN) ? NaN : Math.max(...row)]));
  }
  const cols = kx.sum(x, 0).toFloat32Array();
  record('sum_cols', worst(cols, Array.from({ length: n }, (_, j) => sumOf(Array.from({ length: rows }, (_, r) => data[r * n + j]!))), 1,
    (j) => 4 * 2 ** -24 * absSum(Array.from({ length: rows }, (_, r) => data[r * n + j]!))));
}
{
  const [R, C] = [5000, 37];  // a column cascade past 4096 rows
  const data = randoms(R * C, -1, 1);
  const cols = kx.sum(kx.tensor(f32(data), [R, C]), 0).toFloat32Array();
  const col = (j: number) => Array.from({ length: R }, (_, r) => data[r * C + j]!);
  record('sum_cols', worst(cols, Array.from({ length: C }, (_, j) => sumOf(col(j))), 1, (j) => (64 + 64 + 4) * 2 ** -24 * absSum(col(j))));
}

// Softmax and log-softmax backward rows against float64.
for (const n of LENGTHS) {
  const xs = randoms(n, -8, 8);
  const dys = randoms(n, -2, 2);
  const x = kx.tensor(f32(xs), [1, n]);
  const dy = kx.tensor(f32(dys), [1, n]);
  const y = kx.softmax(x).toFloat32Array();
  const ly = kx.logSoftmax(x).toFloat32Array();
  const dx = kx.runKernel('softmax_backward', [kx.tensor(y, [1, n]), dy], { axis: -1, log: false })[0]!.toFloat32Array();
  const dlx = kx.runKernel('softmax_backward', [kx.tensor(ly, [1, n]), dy], { axis: -1, log: true })[0]!.toFloat32Array();
  const yy = [...y], dot = sumOf(yy.map((v, i) => v * dys[i]!)), dotAbs = absSum(yy.map((v, i) => v * dys[i]!));
  record('softmax_backward', worst(dx, yy.map((v, i) => v * (dys[i]! - dot)), 4, (i) => yy[i]! * (Math.abs(dys[i]!) + Math.abs(dot)) * 2 ** -23 + yy[i]! * sumBound(n) * dotAbs));
  const sdy = sumOf(dys);
  record('log_softmax_backward', worst(dlx, [...ly].map((v, i) => dys[i]! - Math.exp(v) * sdy), 4,
    (i) => Math.exp(ly[i]!) * (8 * 2 ** -24 * Math.abs(sdy) + sumBound(n) * absSum(dys)) + 2 ** -23 * Math.abs(dys[i]!)));
}

// LayerNorm and RMSNorm, forward and backward (dx, dgamma, dbeta), and the residual LayerNorm,
// against float64 from the same float32 inputs. The bounds scale with each element's terms and
// with the lane sums of the row statistics (one lane sum over the whole row).
for (const n of LENGTHS) {
  const rows = 4;
  const xs = randoms(rows * n, -3, 3).map((v, i) => Math.fround(v + (i % 7 === 0 ? 1 : 0)));
  const res = randoms(rows * n, -1, 1);
  const gs = randoms(n, 0.5, 1.5), bs = randoms(n, -1, 1), dys = randoms(rows * n, -1, 1);
  const eps = 1e-5;
  const tol = (Math.ceil(n / 32) + 8) * 2 ** -23;  // the statistics' lane sums, relative
  const x = kx.tensor(f32(xs), [rows, n]), g = kx.tensor(f32(gs), [n]), b = kx.tensor(f32(bs), [n]);
  const dy = kx.tensor(f32(dys), [rows, n]);
  const [y, mean, rstd] = kx.runKernel('layer_norm', [x, g, b], { eps });
  const [dx, dg, db] = kx.runKernel('layer_norm_backward', [dy, x, g, mean!, rstd!], {});
  const [ry, rrstd] = kx.runKernel('rms_norm', [x, g], { eps });
  const [rdx, rdg] = kx.runKernel('rms_norm_backward', [dy, x, g, rrstd!], {});
  const [ay] = kx.runKernel('add_layer_norm', [x, kx.tensor(f32(res), [rows, n]), g, b], { eps });
  const yv = y!.toFloat32Array(), dxv = dx!.toFloat32Array(), ryv = ry!.toFloat32Array(), rdxv = rdx!.toFloat32Array(), ayv = ay!.toFloat32Array();
  const dgE = new Array<number>(n).fill(0), dbE = new Array<number>(n).fill(0), rdgE = new Array<number>(n).fill(0);
  const dgS = new Array<number>(n).fill(0), dbS = new Array<number>(n).fill(0), rdgS = new Array<number>(n).fill(0);
  for (let r = 0; r < rows; ++r) {
    const row = xs.slice(r * n, (r + 1) * n), d = dys.slice(r * n, (r + 1) * n), at = (i: number) => r * n + i;
    const m = sumOf(row) / n, v = sumOf(row.map((t) => (t - m) ** 2)) / n, rs = 1 / Math.sqrt(v + eps);
    const xh = row.map((t) => (t - m) * rs);
    record('layer_norm', worst(yv.subarray(r * n, (r + 1) * n), xh.map((h, i) => h * gs[i]! + bs[i]!), 4, (i) => (Math.abs(xh[i]!) + 1) * gs[i]! * tol));
    const gg = d.map((t, i) => t * gs[i]!), mg = sumOf(gg) / n, mgx = sumOf(gg.map((t, i) => t * xh[i]!)) / n;
    const mgAbs = absSum(gg) / n, mgxAbs = absSum(gg.map((t, i) => t * xh[i]!)) / n;
    record('layer_norm_backward', worst(dxv.subarray(r * n, (r + 1) * n), gg.map((t, i) => rs * (t - mg - xh[i]! * mgx)), 8,
      (i) => rs * (Math.abs(gg[i]!) + mgAbs + (Math.abs(xh[i]!) + 1) * mgxAbs) * tol * 2));
    for (let i = 0; i < n; ++i) {
      dgE[i] += d[i]! * xh[i]!; dbE[i] += d[i]!; dgS[i] += Math.abs(d[i]! * xh[i]!) * (1 + Math.abs(xh[i]!)); dbS[i] += Math.abs(d[i]!);
    }
    const rr = 1 / Math.sqrt(sumOf(row.map((t) => t * t)) / n + eps), mgxr = sumOf(gg.map((t, i) => t * row[i]!)) / n;
    record('rms_norm', worst(ryv.subarray(r * n, (r + 1) * n), row.map((t, i) => t * rr * gs[i]!), 4, (i) => Math.abs(row[i]! * rr * gs[i]!) * tol));
    const mgxrAbs = absSum(gg.map((t, i) => t * row[i]!)) / n;
    record('rms_norm_backward', worst(rdxv.subarray(r * n, (r + 1) * n), gg.map((t, i) => rr * t - row[i]! * rr ** 3 * mgxr), 8,
      (i) => (rr * Math.abs(gg[i]!) + Math.abs(row[i]!) * rr ** 3 * mgxrAbs) * tol * 2));
    for (let i = 0; i < n; ++i) { rdgE[i] += d[i]! * row[i]! * rr; rdgS[i] += Math.abs(d[i]! * row[i]! * rr); }
    const srow = row.map((t, i) => Math.fround(t + res[at(i)]!));
    const sm = sumOf(srow) / n, sr = 1 / Math.sqrt(sumOf(srow.map((t) => (t - sm) ** 2)) / n + eps);
    record('add_layer_norm', worst(ayv.subarray(r * n, (r + 1) * n), srow.map((t, i) => (t - sm) * sr * gs[i]! + bs[i]!), 4,
      (i) => (Math.abs((srow[i]! - sm) * sr) + 1) * gs[i]! * tol));
  }
  const sumTol = (rows + 4) * 2 ** -24;
  record('layer_norm_dgamma', worst(dg!.toFloat32Array(), dgE, 4, (i) => dgS[i]! * (sumTol + tol)));
  record('layer_norm_dbeta', worst(db!.toFloat32Array(), dbE, 4, (i) => dbS[i]! * sumTol));
  record('rms_norm_dgamma', worst(rdg!.toFloat32Array(), rdgE, 4, (i) => rdgS[i]! * (sumTol + tol)));
}

// The optimizer updates (double math, rounded once to float32) against float64: within an ulp of
// each stored value (a fused multiply-add may round the double result differently, never by a
// float32 ulp). Odd lengths with zero, tiny and large gradients.
{
  const n = 1013 + 41;
  const theta0 = randoms(n, -2, 2), m0 = randoms(n, -0.1, 0.1), v0 = randoms(n, 0, 0.01);
  const grads = [...[0, -0, 1e-40, -1e-40, 1e-20, 30, -30, 1e3], ...randoms(n - 8, -1, 1)];
  const params = () => [kx.tensor(f32(theta0), [n]), kx.tensor(f32(grads), [n]), kx.tensor(f32(m0), [n]), kx.tensor(f32(v0), [n])];
  const ulps1 = (name: string, t: kx.Tensor, e: number[]) => record(name, worst(t.toFloat32Array(), e, 1, () => 2 ** -149));

  const [lr, b1, b2, epsA, wd, step, gscale] = [1e-2, 0.9, 0.999, 1e-8, 0.01, 3, 0.5];
  const [p, g, m, v] = params();
  kx.runKernel('optim_adamw', [p!, g!, m!, v!], { lr, beta1: b1, beta2: b2, eps: epsA, weightDecay: wd, step, gradScale: gscale });
  const ea = theta0.map((t0, i) => {
    const gi = gscale * grads[i]!;
    const mi = b1 * m0[i]! + (1 - b1) * gi, vi = b2 * v0[i]! + (1 - b2) * gi * gi;
    const t = t0 * (1 - lr * wd);
    return [t - (lr / (1 - b1 ** step)) * mi / (Math.sqrt(vi) / Math.sqrt(1 - b2 ** step) + epsA), mi, vi];
  });
  ulps1('adamw', p!, ea.map((e) => e[0]!));
  ulps1('adamw_m', m!, ea.map((e) => e[1]!));
  ulps1('adamw_v', v!, ea.map((e) => e[2]!));

  const [tp, tg, tm] = params();
  const beta = 0.965;
  const flag = kx.runKernel('optim_tiger', [tp!, tg!, tm!], { lr, beta, rms: 'tensor', weightDecay: wd, gradScale: gscale })[0]!;
  const eta = lr * Math.sqrt(sumOf(theta0.map((t) => t * t)) / n);
  const tmE = m0.map((mi, i) => Math.fround(beta * mi + (1 - beta) * gscale * grads[i]!));
  ulps1('tiger_m', tm!, tmE);
  ulps1('tiger', tp!, theta0.map((t, i) => t - eta * (Math.sign(tmE[i]!) + wd * t)));
  record('tiger', flag.toFloat32Array()[0] === 1 ? 0 : Infinity);

  const [sp, , sb] = params();
  kx.runKernel('optim_tiger', [sp!, kx.tensor(f32(grads.map((x, i) => (i === 5 ? NaN : x))), [n]), sb!], { lr, shrink: 0.99, centre: 1 });
  ulps1('tiger_shrink', sp!, theta0.map((t) => (t - 1) * 0.99 + 1));

  const [lp, lg, lm] = params();
  const [l1, l2] = [0.95, 0.98];
  kx.runKernel('optim_lion', [lp!, lg!, lm!], { lr, beta1: l1, beta2: l2, weightDecay: wd, gradScale: gscale });
  ulps1('lion', lp!, theta0.map((t, i) => t - lr * (Math.sign(l1 * m0[i]! + (1 - l1) * gscale * grads[i]!) + wd * t)));
  ulps1('lion_m', lm!, m0.map((mi, i) => l2 * mi + (1 - l2) * gscale * grads[i]!));

  const [gp, gg, gb] = params();
  const [mu, damp] = [0.9, 0.1];
  kx.runKernel('optim_sgd', [gp!, gg!, gb!], { lr, momentum: mu, dampening: damp, nesterov: true, weightDecay: wd, gradScale: gscale });
  const bufE = m0.map((bi, i) => mu * bi + (1 - damp) * (gscale * grads[i]! + wd * theta0[i]!));
  ulps1('sgd_m', gb!, bufE);
  ulps1('sgd', gp!, theta0.map((t, i) => t - lr * (gscale * grads[i]! + wd * t + mu * bufE[i]!)));
}

// bfloat16: every bfloat16 widened (exact: the top half of a float32), and floats narrowed with
// round-to-nearest-even (NaN to 0x7fc0); also compared across targets by the test.
const bf16Bits = (f: number) => {
  if (Number.isNaN(f)) return 0x7fc0;
  const u = new Uint32Array(Float32Array.of(f).buffer)[0]!;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
};
{
  const all = kx.tensor(Uint16Array.from({ length: 65536 }, (_, i) => i), [65536], { dtype: 'bfloat16' });
  const wide = kx.cast(all, 'float32').toFloat32Array();
  const expectWide = new Float32Array(new Uint32Array(Array.from({ length: 65536 }, (_, i) => i << 16)).buffer);
  record('bf16_widen', exact(wide, [...expectWide]));
  const src = f32([...EDGES, 3.39e38, -3.4e38, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1e-40, ...randoms(2001, -1e5, 1e5)]);
  const bits = kx.cast(kx.tensor(src, [src.length]), 'bfloat16').dataSync() as Uint16Array;
  record('bf16_narrow', [...src].every((f, i) => bits[i] === bf16Bits(f)) ? 0 : Infinity);
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
