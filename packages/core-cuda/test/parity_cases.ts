/**
 * The case table of the CPU-vs-CUDA harness (cuda_parity.test.ts): each case makes random inputs on
 * the CPU through the public API and runs one op family through the public call that reaches its
 * native op (TS names differ from native ones: `kx.softmax` reaches `softmax`, its gradient
 * `softmax_backward`). The harness copies the inputs to each device, runs `run` there (and its
 * gradient, for the inputs listed in `grad`), and compares. Every native op of ops.def must be
 * reached by some case: the harness records the ops each case calls and checks that on any machine.
 */
import * as kx from '../src/index.js';

export const FLOAT_DTYPES: readonly kx.DType[] = ['float32', 'float16', 'bfloat16'];

/** A seeded generator (mulberry32) with uniform and normal draws. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  uniform(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  }
  normal(): number {
    const u = Math.max(this.uniform(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.uniform());
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.uniform() * (hi - lo));
  }
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Normal values (times `scale`, plus `shift`) in `dtype`, made on the CPU. */
export function randn(rng: Rng, shape: readonly number[], dtype: kx.DType, scale = 1, shift = 0): kx.Tensor {
  return kx.tensor(Float32Array.from({ length: size(shape) }, () => rng.normal() * scale + shift), shape, { dtype });
}

/** Uniform values in [lo, hi). */
export function uniform(rng: Rng, shape: readonly number[], dtype: kx.DType, lo: number, hi: number): kx.Tensor {
  return kx.tensor(Float32Array.from({ length: size(shape) }, () => lo + (hi - lo) * rng.uniform()), shape, { dtype });
}

export function ints(rng: Rng, shape: readonly number[], lo: number, hi: number): kx.Tensor {
  return kx.tensor(Int32Array.from({ length: size(shape) }, () => rng.int(lo, hi)), shape);
}

export function bools(rng: Rng, shape: readonly number[], pTrue: number): kx.Tensor {
  return kx.tensor(Uint8Array.from({ length: size(shape) }, () => (rng.uniform() < pTrue ? 1 : 0)), shape);
}

export interface ParityCase {
  name: string;
  /** The inputs, made on the CPU, for a floating dtype (integer and mask inputs keep their own). */
  inputs: (dtype: kx.DType, rng: Rng) => kx.Tensor[];
  /**
   * The op through the public API, on inputs already on the device under test. It may return the
   * (mutated) inputs, for the in-place optimizer updates.
   */
  run: (xs: kx.Tensor[]) => kx.Tensor | kx.Tensor[];
  /** Inputs to differentiate: the harness also compares d(Σ w·y)/dx for fixed random weights w. */
  grad?: number[];
  /** The scalar to differentiate instead of Σ w·y (e.g. a loss used as it is, dloss = 1). */
  loss?: (ys: kx.Tensor[]) => kx.Tensor;
  /** Default: float32, float16, bfloat16. */
  dtypes?: readonly kx.DType[];
  /**
   * Wider nMSE bounds for some dtypes, where the CUDA kernel rounds intermediates the CPU keeps in
   * float32 (the tensor-core attention rounds P and dS to the storage type before their products,
   * as FlashAttention does: about 5e-6 in bfloat16 by a simulation of that rounding alone).
   */
  nmseBound?: Partial<Record<kx.DType, number>>;
}

/** The tensor-core attention's bounds (head dims 64 and 128; see ParityCase.nmseBound): four times the general ones. */
const ATTENTION_BOUND = { float16: 4e-6, bfloat16: 4e-5 } as const;

const unaryFns: Array<[string, (x: kx.Tensor) => kx.Tensor, boolean]> = [
  ['neg', kx.neg, false],
  ['exp', kx.exp, false],
  ['log', kx.log, true],
  ['sqrt', kx.sqrt, true],
  ['rsqrt', kx.rsqrt, true],
  ['tanh', kx.tanh, false],
  ['sigmoid', kx.sigmoid, false],
  ['relu', kx.relu, false],
  ['silu', kx.silu, false],
  ['gelu', (x) => kx.gelu(x), false],
  ['gelu tanh', (x) => kx.gelu(x, { approximate: 'tanh' }), false],
  ['pow 2', (x) => kx.pow(x, 2), false],
  ['pow 3', (x) => kx.pow(x, 3), false],
  ['pow -1', (x) => kx.pow(x, -1), true],
  ['pow 0.5', (x) => kx.pow(x, 0.5), true],
  ['pow 1.7', (x) => kx.pow(x, 1.7), true],
];

const binaryFns: Array<[string, (a: kx.Tensor, b: kx.Tensor) => kx.Tensor]> = [
  ['add', kx.add],
  ['sub', kx.sub],
  ['mul', kx.mul],
  ['div', kx.div],
];

const tigerBase = { lr: 1e-3, beta: 0.945, accumSteps: 1, first: true, update: true, weightDecay: 0.01, shrink: 0.99, centre: 0 };

export const CASES: ParityCase[] = [
  // elementwise: binary ops with broadcasting (and a long vector, past one block), where, broadcast_to
  ...binaryFns.flatMap(([name, fn]): ParityCase[] => [
    {
      name: `${name} broadcast`,
      inputs: (dt, r) => [randn(r, [4, 1, 37], dt), uniform(r, [5, 37], dt, 0.5, 2)],
      run: ([a, b]) => fn(a!, b!),
      grad: [0, 1],
    },
    {
      name: `${name} long`,
      inputs: (dt, r) => [randn(r, [100_003], dt), uniform(r, [100_003], dt, 0.5, 2)],
      run: ([a, b]) => fn(a!, b!),
    },
  ]),
  {
    name: 'where',
    inputs: (dt, r) => [bools(r, [3, 1, 17], 0.5), randn(r, [3, 4, 17], dt), randn(r, [17], dt)],
    run: ([c, a, b]) => kx.where(c!, a!, b!),
    grad: [1, 2],
  },
  {
    name: 'broadcastTo',
    inputs: (dt, r) => [randn(r, [3, 1, 5], dt)],
    run: ([x]) => kx.broadcastTo(x!, [2, 3, 4, 5]),
    grad: [0],
  },
  ...unaryFns.map(([name, fn, positive]): ParityCase => ({
    name: `unary ${name}`,
    inputs: (dt, r) => [positive ? uniform(r, [7, 301], dt, 0.05, 4) : randn(r, [7, 301], dt, 2)],
    run: ([x]) => fn(x!),
    grad: [0],
  })),

  // reductions
  ...([[], [1], [0, 2], [-1]] as number[][]).flatMap((axes): ParityCase[] => [
    { name: `sum axes [${axes}]`, inputs: (dt, r) => [randn(r, [6, 33, 129], dt)], run: ([x]) => kx.sum(x!, axes), grad: [0] },
    { name: `mean axes [${axes}] keepDims`, inputs: (dt, r) => [randn(r, [6, 33, 129], dt)], run: ([x]) => kx.mean(x!, axes, true), grad: [0] },
    { name: `max axes [${axes}]`, inputs: (dt, r) => [randn(r, [6, 33, 129], dt)], run: ([x]) => kx.max(x!, axes), grad: [0] },
  ]),
  // an empty reduced axis before others: zeros (sum) and NaN (mean), with rows long and short
  ...([[0, 3, 4, 5], [0, 3, 2000]] as number[][]).flatMap((shape): ParityCase[] => [
    { name: `sum of empty [${shape}] over [0, 2]`, inputs: (dt, r) => [randn(r, shape, dt)], run: ([x]) => kx.sum(x!, [0, 2]) },
    { name: `mean of empty [${shape}] over [0, 2]`, inputs: (dt, r) => [randn(r, shape, dt)], run: ([x]) => kx.mean(x!, [0, 2]) },
  ]),
  { name: 'layerNorm backward past 48 KiB of shared memory (d 6144)', inputs: (dt, r) => [randn(r, [3, 6144], dt)], run: ([x]) => kx.layerNorm(x!), grad: [0] },
  { name: 'rmsNorm backward past 48 KiB of shared memory (d 12288)', inputs: (dt, r) => [randn(r, [2, 12288], dt)], run: ([x]) => kx.rmsNorm(x!), grad: [0] },

  // softmax family
  { name: 'softmax last axis', inputs: (dt, r) => [randn(r, [5, 7, 1000], dt, 3)], run: ([x]) => kx.softmax(x!), grad: [0] },
  { name: 'softmax axis 1', inputs: (dt, r) => [randn(r, [5, 63, 9], dt, 3)], run: ([x]) => kx.softmax(x!, 1), grad: [0] },
  { name: 'softmax long row', inputs: (dt, r) => [randn(r, [3, 40_001], dt, 3)], run: ([x]) => kx.softmax(x!), grad: [0] },
  { name: 'logSoftmax', inputs: (dt, r) => [randn(r, [9, 515], dt, 3)], run: ([x]) => kx.logSoftmax(x!), grad: [0] },
  { name: 'logSoftmax axis 0', inputs: (dt, r) => [randn(r, [31, 6], dt, 3)], run: ([x]) => kx.logSoftmax(x!, 0), grad: [0] },

  // softmax cross-entropy with ignore-index over a large vocabulary
  {
    name: 'crossEntropy ignoreIndex',
    inputs: (dt, r) => {
      const labels = ints(r, [24], 0, 21_128);
      const ids = labels.dataSync() as Int32Array;
      for (let i = 0; i < ids.length; i += 5) ids[i] = -100;
      return [randn(r, [24, 21_128], dt, 2), kx.tensor(ids, [24])];
    },
    run: ([logits, labels]) => kx.crossEntropy(logits!, labels!),
    grad: [0],
  },
  {
    name: 'crossEntropy as the loss (dloss = 1)',
    inputs: (dt, r) => [randn(r, [9, 1031], dt, 2), ints(r, [9], 0, 1031)],
    run: ([logits, labels]) => kx.crossEntropy(logits!, labels!),
    grad: [0],
    loss: ([loss]) => loss!,
  },
  {
    name: 'crossEntropy custom ignore',
    inputs: (dt, r) => [randn(r, [7, 33], dt, 2), kx.tensor(Int32Array.from([0, 32, 3, 3, 1, 5, 3]), [7])],
    run: ([logits, labels]) => kx.crossEntropy(logits!, labels!, { ignoreIndex: 3 }),
    grad: [0],
  },

  // norms (with and without the affine parameters)
  {
    name: 'layerNorm',
    inputs: (dt, r) => [randn(r, [4, 9, 768], dt, 2, 0.5), randn(r, [768], dt, 0.2, 1), randn(r, [768], dt, 0.1)],
    run: ([x, g, b]) => kx.layerNorm(x!, g!, b!, 1e-12),
    grad: [0, 1, 2],
  },
  { name: 'layerNorm plain, odd width', inputs: (dt, r) => [randn(r, [13, 131], dt, 3)], run: ([x]) => kx.layerNorm(x!), grad: [0] },
  {
    name: 'rmsNorm',
    inputs: (dt, r) => [randn(r, [4, 9, 512], dt, 2), randn(r, [512], dt, 0.2, 1)],
    run: ([x, g]) => kx.rmsNorm(x!, g!),
    grad: [0, 1],
  },
  { name: 'rmsNorm plain, odd width', inputs: (dt, r) => [randn(r, [17, 77], dt, 3)], run: ([x]) => kx.rmsNorm(x!), grad: [0] },

  // the fused tier: bias+GELU, residual+LayerNorm, residual+RMSNorm (through y alone, and y and sum)
  ...(['none', 'tanh'] as const).map(
    (approximate): ParityCase => ({
      name: `biasGelu ${approximate}`,
      inputs: (dt, r) => [randn(r, [3, 17, 3072], dt, 2), randn(r, [3072], dt, 0.5)],
      run: ([x, b]) => kx.biasGelu(x!, b!, { approximate }),
      grad: [0, 1],
    }),
  ),
  {
    name: 'addLayerNorm y and sum',
    inputs: (dt, r) => [randn(r, [4, 9, 768], dt), randn(r, [4, 9, 768], dt, 2, 0.3), randn(r, [768], dt, 0.2, 1), randn(r, [768], dt, 0.1)],
    run: ([x, res, g, b]) => {
      const { y, sum } = kx.addLayerNorm(x!, res!, g!, b!, 1e-12);
      return [y, sum];
    },
    grad: [0, 1, 2, 3],
  },
  {
    name: 'addLayerNorm y, plain',
    inputs: (dt, r) => [randn(r, [13, 131], dt), randn(r, [13, 131], dt, 2)],
    run: ([x, res]) => kx.addLayerNorm(x!, res!).y,
    grad: [0, 1],
  },
  {
    name: 'addRmsNorm y and sum',
    inputs: (dt, r) => [randn(r, [4, 9, 512], dt), randn(r, [4, 9, 512], dt, 2), randn(r, [512], dt, 0.2, 1)],
    run: ([x, res, g]) => {
      const { y, sum } = kx.addRmsNorm(x!, res!, g!);
      return [y, sum];
    },
    grad: [0, 1, 2],
  },
  {
    name: 'addRmsNorm y, plain',
    inputs: (dt, r) => [randn(r, [17, 77], dt), randn(r, [17, 77], dt, 2)],
    run: ([x, res]) => kx.addRmsNorm(x!, res!).y,
    grad: [0, 1],
  },

  // embedding (repeated ids make the backward's scatter-add collide)
  {
    name: 'embedding',
    inputs: (dt, r) => [ints(r, [4, 33], 0, 50), randn(r, [50, 96], dt)],
    run: ([ids, table]) => kx.embedding(ids!, table!),
    grad: [1],
  },

  // topk: indices must be equal (CUDA keeps k <= 32 per thread in registers and sorts whole rows for larger k)
  {
    name: 'topk k 4 of vocabulary-wide rows',
    inputs: (dt, r) => [uniform(r, [16, 50_000], dt, 0, 1)],
    run: ([x]) => {
      const { values, indices } = kx.topk(x!, 4);
      return [values, indices];
    },
    grad: [0],
  },
  {
    name: 'topk smallest k 17 along axis 1',
    inputs: (dt, r) => [randn(r, [5, 300, 7], dt)],
    run: ([x]) => {
      const { values, indices } = kx.topk(x!, 17, { axis: 1, largest: false });
      return [values, indices];
    },
    grad: [0],
  },
  {
    name: 'topk ties and NaN (integers, every 50th NaN)',
    inputs: (dt, r) => {
      const data = Float32Array.from({ length: 12 * 3001 }, (_, i) => (i % 50 === 7 ? NaN : r.int(-20, 20)));
      return [kx.tensor(data, [12, 3001], { dtype: dt })];
    },
    run: ([x]) => [kx.topk(x!, 32).indices, kx.topk(x!, 9, { largest: false }).indices],
  },
  {
    name: 'topk k 40 and k = the row (the sort path)',
    inputs: (dt, r) => [randn(r, [6, 1000], dt), randn(r, [4, 33], dt)],
    run: ([a, b]) => {
      const top = kx.topk(a!, 40);
      const all = kx.topk(b!, 33, { largest: false });
      return [top.values, top.indices, all.values, all.indices];
    },
    grad: [0, 1],
  },

  // rope, with default and explicit (broadcast) positions
  { name: 'rope', inputs: (dt, r) => [randn(r, [2, 3, 17, 64], dt)], run: ([x]) => kx.rope(x!), grad: [0] },
  {
    name: 'rope positions',
    inputs: (dt, r) => [randn(r, [2, 3, 9, 32], dt), ints(r, [2, 1, 9], 0, 512)],
    run: ([x, p]) => kx.rope(x!, { positions: p! }),
    grad: [0],
  },
  {
    name: 'rope rotate-half partial offset linear',
    inputs: (dt, r) => [randn(r, [2, 3, 9, 40], dt)],
    run: ([x]) => kx.rope(x!, { layout: 'rotate-half', rotaryDim: 24, offset: 100, scaling: { type: 'linear', factor: 4 } }),
    grad: [0],
  },
  {
    name: 'rope frequencies positions inverse',
    inputs: (dt, r) => [randn(r, [3, 17, 33], dt), ints(r, [17], 0, 4096)],
    run: ([x, p]) => kx.rope(x!, { positions: p!, rotaryDim: 16, frequencies: kx.tensor(Float32Array.from(kx.ropeFrequencies(16, 500)), [8], { device: x!.device }), inverse: true }),
    grad: [0],
  },

  // attention: plain, padding mask, T5-style bias, causal with Tq != Tk, Dv != D
  {
    name: 'attention',
    nmseBound: ATTENTION_BOUND,
    inputs: (dt, r) => [randn(r, [2, 3, 33, 64], dt), randn(r, [2, 3, 33, 64], dt), randn(r, [2, 3, 33, 64], dt)],
    run: ([q, k, v]) => kx.attention(q!, k!, v!),
    grad: [0, 1, 2],
  },
  {
    name: 'attention mask bias',
    inputs: (dt, r) => [
      randn(r, [2, 4, 19, 32], dt),
      randn(r, [2, 4, 23, 32], dt),
      randn(r, [2, 4, 23, 16], dt),
      bools(r, [2, 1, 1, 23], 0.8),
      randn(r, [1, 4, 19, 23], dt),
    ],
    run: ([q, k, v, mask, bias]) => kx.attention(q!, k!, v!, { mask: mask!, bias: bias! }),
    grad: [0, 1, 2, 4],
  },
  {
    name: 'attention causal Tq < Tk',
    nmseBound: ATTENTION_BOUND,
    inputs: (dt, r) => [randn(r, [1, 2, 70, 64], dt), randn(r, [1, 2, 130, 64], dt), randn(r, [1, 2, 130, 64], dt)],
    run: ([q, k, v]) => kx.attention(q!, k!, v!, { causal: true, scale: 0.1 }),
    grad: [0, 1, 2],
  },
  {
    name: 'attention causal Tq > Tk (rows with no key)',
    inputs: (dt, r) => [randn(r, [1, 2, 12, 16], dt), randn(r, [1, 2, 8, 16], dt), randn(r, [1, 2, 8, 16], dt)],
    run: ([q, k, v]) => kx.attention(q!, k!, v!, { causal: true }),
    grad: [0, 1, 2],
  },

  // matrix products: batched, transposed, broadcast batch dims, bias epilogue, odd sizes
  {
    name: 'matmul batched + bias',
    inputs: (dt, r) => [randn(r, [3, 37, 65], dt), randn(r, [65, 129], dt), randn(r, [129], dt)],
    run: ([a, b, bias]) => kx.matmul(a!, b!, { bias: bias! }),
    grad: [0, 1, 2],
  },
  {
    name: 'matmul transA transB broadcast',
    inputs: (dt, r) => [randn(r, [2, 1, 40, 17], dt), randn(r, [3, 33, 40], dt)],
    run: ([a, b]) => kx.matmul(a!, b!, { transA: true, transB: true }),
    grad: [0, 1],
  },
  {
    name: 'matmul large',
    inputs: (dt, r) => [randn(r, [256, 768], dt), randn(r, [768, 1024], dt)],
    run: ([a, b]) => kx.matmul(a!, b!),
    grad: [0, 1],
  },

  {
    // a weight packed for inference (CPU: oneDNN's layout; CUDA: the weight as it is)
    name: 'matmul with a packed weight + bias',
    inputs: (dt, r) => [randn(r, [2, 19, 96], dt), randn(r, [70, 96], dt), randn(r, [70], dt)],
    run: ([a, w, bias]) => kx.matmulPacked(a!, kx.packWeight(w!, { transB: true }), { bias: bias! }),
  },

  // shape ops, floating and integer
  { name: 'reshape', inputs: (dt, r) => [randn(r, [6, 10], dt)], run: ([x]) => kx.reshape(x!, [3, -1, 4]), grad: [0] },
  { name: 'permute', inputs: (dt, r) => [randn(r, [2, 3, 5, 7], dt)], run: ([x]) => kx.permute(x!, [0, 2, 3, 1]), grad: [0] },
  { name: 'permute int32', inputs: (_dt, r) => [ints(r, [4, 5, 6], -1000, 1000)], run: ([x]) => kx.permute(x!, [2, 0, 1]), dtypes: ['float32'] },
  { name: 'slice', inputs: (dt, r) => [randn(r, [5, 9, 11], dt)], run: ([x]) => kx.slice(x!, [1, 2, 3], [3, -1, 5]), grad: [0] },
  {
    name: 'concat',
    inputs: (dt, r) => [randn(r, [2, 3, 4], dt), randn(r, [2, 5, 4], dt), randn(r, [2, 1, 4], dt)],
    run: (xs) => kx.concat(xs, 1),
    grad: [0, 1, 2],
  },
  { name: 'concat uint8', inputs: (_dt, r) => [bools(r, [3, 4], 0.5), bools(r, [2, 4], 0.5)], run: (xs) => kx.concat(xs, 0), dtypes: ['float32'] },

  // casts between every pair of dtypes
  ...(['float32', 'float16', 'bfloat16', 'int32'] as const).map(
    (to): ParityCase => ({
      name: `cast to ${to}`,
      inputs: (dt, r) => [randn(r, [3, 1001], dt, 100)],
      run: ([x]) => kx.cast(x!, to),
    }),
  ),
  { name: 'cast int32 to float', inputs: (dt, r) => [ints(r, [999], -70_000, 70_000), kx.scalar(0, { dtype: dt })], run: ([x, like]) => kx.cast(x!, like!.dtype) },
  { name: 'cast uint8 to float', inputs: (dt, r) => [bools(r, [999], 0.5), kx.scalar(0, { dtype: dt })], run: ([x, like]) => kx.cast(x!, like!.dtype) },

  // dropout: the same Philox key gives the same mask on every device
  {
    name: 'dropout',
    inputs: (dt, r) => [randn(r, [8, 1025], dt)],
    run: ([x]) => kx.dropout(x!, 0.1, { seed: 1234, offset: 77 }),
    grad: [0],
  },
  // normal draws and the vMF samplers of w: the same Philox key gives the same numbers on every device
  // (x only says where to draw); the vMF table is built on the CPU (vmf_cdf) and copied
  {
    name: 'randomNormal',
    inputs: (dt, r) => [randn(r, [7, 1025], dt)],
    run: ([x]) => kx.randomNormal(x!.shape, { seed: 99, offset: 5 }, { device: x!.device }),
    dtypes: ['float32'],
  },
  {
    name: 'vmf inverse-CDF draws of w',
    inputs: (dt, r) => [randn(r, [1], dt)],
    run: ([x]) => kx.vmf.InverseCdf.build(4, 20, { device: x!.device }).sample(4099, { seed: 5, offset: 3 }),
    dtypes: ['float32'],
  },
  {
    name: 'vmf compose z = w mu + sqrt(1 - w^2) nu',
    inputs: (dt, r) => [randn(r, [37, 5], dt), uniform(r, [37], dt, -0.9, 0.9), randn(r, [37, 5], dt), randn(r, [3, 130], dt), uniform(r, [3], dt, -0.9, 0.9), randn(r, [3, 130], dt)],
    run: ([m, w, e, m2, w2, e2]) => [kx.vmf.compose(m!, w!, e!), kx.vmf.compose(m2!, w2!, e2!)],
    grad: [0, 1, 2, 3, 4, 5],
  },
  {
    name: "vmf Wood's draws of w",
    inputs: (dt, r) => [randn(r, [1], dt)],
    run: ([x]) => [kx.vmf.sampleWood(4099, 64, 100, { seed: 6 }, { device: x!.device }), kx.vmf.sampleWood(513, 3, 0.5, { seed: 7 }, { device: x!.device })],
    dtypes: ['float32'],
  },

  // GlobalPointer scoring (-inf entries must match exactly) and the multilabel losses
  {
    name: 'globalPointerScores mask tril',
    inputs: (dt, r) => [randn(r, [2, 3, 13, 16], dt), randn(r, [2, 3, 13, 16], dt), bools(r, [2, 13], 0.8)],
    run: ([q, k, mask]) => kx.globalPointerScores(q!, k!, { mask: mask!, tril: true }),
  },
  {
    name: 'globalPointerScores grad',
    inputs: (dt, r) => [randn(r, [2, 3, 11, 16], dt), randn(r, [2, 3, 11, 16], dt)],
    run: ([q, k]) => kx.globalPointerScores(q!, k!, { tril: false }),
    grad: [0, 1],
  },
  {
    name: 'globalPointerScores efficient start/end',
    inputs: (dt, r) => [randn(r, [2, 1, 11, 32], dt), randn(r, [2, 1, 11, 32], dt), randn(r, [2, 4, 11], dt), randn(r, [2, 4, 11], dt)],
    run: ([q, k, start, end]) => kx.globalPointerScores(q!, k!, { start: start!, end: end!, tril: false }),
    grad: [0, 1, 2, 3],
  },
  {
    name: 'multilabelCrossEntropy',
    inputs: (dt, r) => [randn(r, [6, 4, 121], dt, 3), bools(r, [6, 4, 121], 0.05).cast(dt)],
    run: ([s, t]) => kx.multilabelCrossEntropy(s!, t!, { reduction: 'none' }),
    grad: [0],
  },
  {
    name: 'sparseMultilabelCrossEntropy maskZero',
    inputs: (dt, r) => [randn(r, [6, 121], dt, 3), ints(r, [6, 4], 0, 121)],
    run: ([s, idx]) => kx.sparseMultilabelCrossEntropy(s!, idx!, { maskZero: true, reduction: 'none' }),
    grad: [0],
  },

  // fused optimizer updates, in place: three steps, then the parameter and the state are compared
  ...(['none', 'tensor', 'row'] as const).map(
    (rms): ParityCase => ({
      name: `tigerUpdate rms ${rms}`,
      inputs: (dt, r) => [randn(r, [64, 300], dt), randn(r, [64, 300], dt, 0.01), randn(r, [64, 300], 'float32', 0.001)],
      run: ([p, g, m]) => {
        const ok = [0, 1, 2].map((i) => kx.tigerUpdate(p!, g!, m!, { ...tigerBase, rms, first: i === 0, gradScale: 0.5 }));
        return [p!, m!, kx.concat(ok, 0)];
      },
    }),
  ),
  {
    name: 'tigerUpdateGroup (one non-finite gradient)',
    inputs: (dt, r) => {
      const g2 = randn(r, [500], 'float32', 0.01).dataSync() as Float32Array;
      g2[77] = Number.POSITIVE_INFINITY;
      return [
        randn(r, [64, 30], dt), randn(r, [64, 30], dt, 0.01), randn(r, [64, 30], 'float32', 0.001),
        randn(r, [500], dt), kx.tensor(g2, [500], { dtype: dt }), randn(r, [500], 'float32', 0.001),
      ];
    },
    run: ([p1, g1, m1, p2, g2, m2]) => {
      const slots = [
        { param: p1!, grad: g1!, m: m1! },
        { param: p2!, grad: g2!, m: m2! },
      ];
      return [p1!, m1!, p2!, m2!, kx.tigerUpdateGroup(slots, { ...tigerBase, rms: 'tensor' })];
    },
  },
  {
    name: 'tigerUpdate non-finite gradient',
    inputs: (dt, r) => {
      const g = randn(r, [1000], 'float32', 0.01).dataSync() as Float32Array;
      g[517] = Number.NaN;
      return [randn(r, [1000], dt), kx.tensor(g, [1000], { dtype: dt }), randn(r, [1000], 'float32', 0.001)];
    },
    run: ([p, g, m]) => [p!, m!, kx.tigerUpdate(p!, g!, m!, { ...tigerBase, rms: 'tensor' })],
  },
  {
    name: 'lionUpdate',
    inputs: (dt, r) => [randn(r, [77, 129], dt), randn(r, [77, 129], dt, 0.01), randn(r, [77, 129], 'float32', 0.001)],
    run: ([p, g, m]) => {
      for (let i = 0; i < 3; i++) kx.lionUpdate(p!, g!, m!, { lr: 1e-3, beta1: 0.9, beta2: 0.99, weightDecay: 0.01 });
      return [p!, m!];
    },
  },
  {
    name: 'adamwUpdate',
    inputs: (dt, r) => [randn(r, [77, 129], dt), randn(r, [77, 129], dt, 0.01), kx.zeros([77, 129]), kx.zeros([77, 129])],
    run: ([p, g, m, v]) => {
      for (let step = 1; step <= 3; step++) {
        kx.adamwUpdate(p!, g!, m!, v!, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step, gradScale: 0.25 });
      }
      return [p!, m!, v!];
    },
  },
  {
    // global-norm clipping's factor on the device: clipped, not clipped, and the non-finite norms (factor 1)
    name: 'clipFactor',
    inputs: (dt) => [30, 0.5, NaN, Infinity].map((n) => kx.tensor([n], [1], { dtype: dt })),
    run: (norms) => norms.map((n) => kx.clipFactor(n, 1, 0.25)),
  },
  {
    name: 'adamwUpdateGroup',
    inputs: (dt, r) => [
      randn(r, [77, 129], dt), randn(r, [77, 129], dt, 0.01), kx.zeros([77, 129]), kx.zeros([77, 129]),
      randn(r, [300], dt), randn(r, [300], dt, 0.01), kx.zeros([300]), kx.zeros([300]),
    ],
    run: ([p1, g1, m1, v1, p2, g2, m2, v2]) => {
      const slots = [
        { param: p1!, grad: g1!, m: m1!, v: v1! },
        { param: p2!, grad: g2!, m: m2!, v: v2! },
      ];
      for (let step = 1; step <= 3; step++) {
        kx.adamwUpdateGroup(slots, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step, gradScale: 0.25 });
      }
      return [p1!, m1!, v1!, p2!, m2!, v2!];
    },
  },
  {
    name: 'sgdUpdate nesterov',
    inputs: (dt, r) => [randn(r, [1001], dt), randn(r, [1001], dt, 0.01), kx.zeros([1001])],
    run: ([p, g, buf]) => {
      for (let i = 0; i < 3; i++) {
        kx.sgdUpdate(p!, g!, buf!, { lr: 0.1, momentum: 0.9, dampening: 0, nesterov: true, weightDecay: 1e-4, first: i === 0 });
      }
      return [p!, buf!];
    },
  },
  {
    name: 'sgdUpdate plain',
    inputs: (dt, r) => [randn(r, [1001], dt), randn(r, [1001], dt, 0.01)],
    run: ([p, g]) => {
      kx.sgdUpdate(p!, g!, null, { lr: 0.1, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0, first: true });
      return [p!];
    },
  },
  {
    name: 'globalNorm',
    inputs: (dt, r) => [randn(r, [300, 7], dt), randn(r, [100_001], dt), randn(r, [1], dt)],
    run: (xs) => kx.scalar(kx.globalNorm(xs)),
  },

  // linalg: float32 only; CUDA copies to the host and runs the CPU's float64 path, so the bits agree
  {
    name: 'linalg eigh of a stack of symmetric matrices',
    dtypes: ['float32'],
    inputs: (dt, r) => [kx.tidy(() => {
      const b = randn(r, [3, 40, 40], dt);
      return kx.add(b, kx.transpose(b));
    })],
    run: ([a]) => {
      const { values, vectors } = kx.linalg.eigh(a!);
      return [values, vectors];
    },
  },
  {
    name: 'linalg svd of a tall and a wide matrix',
    dtypes: ['float32'],
    inputs: (dt, r) => [randn(r, [70, 12], dt), randn(r, [5, 33], dt)],
    run: ([tall, wide]) => {
      const t = kx.linalg.svd(tall!);
      const w = kx.linalg.svd(wide!);
      return [t.u, t.s, t.vh, w.u, w.s, w.vh];
    },
  },
  {
    name: 'linalg covariance (β = 0.5; two tile columns, two slabs of rows)',
    dtypes: ['float32'],
    inputs: (dt, r) => [randn(r, [1500, 150], dt, 2, 0.5)],
    run: ([x]) => {
      const { mean, cov } = kx.linalg.covariance(x!, { beta: 0.5 });
      return [mean, cov];
    },
  },
];
