/**
 * The benchmark cases, kexue's side. Each mirrors the case of the same name in bench/torch_bench.py
 * (same shapes, float32). A timed case builds its inputs once (setup) and runs one iteration per
 * run(); every tensor an iteration makes is freed inside it (tidy), so memory stays flat. A
 * measured case (idle-neighbour, bert-*-load) runs its own protocol and returns its fields.
 */
import * as kx from '@kexue/core-cuda';
import { BertForMaskedLM, BertModel, EfficientGlobalPointer, generate, globalPointerLoss, seq2seqLoss, T5ForConditionalGeneration, type T5Config } from '@kexue/models';
import { AdamW, Tiger } from '@kexue/optimizers';

import type { BlockPolicy } from './blocks.js';
import { bertForwardFlops, bertInputs, ensureBertFiles, INFER_MODELS, INFER_POINTS, maxAbsDiff, type InferModel } from './bert_files.js';
import { kexueBert } from './bert_kexue.js';
import { ortBert } from './bert_ort.js';
import { measureLoadCase } from './footprint.js';
import { measureIdleNeighbour } from './neighbour.js';
import { rand, randInt } from './random.js';
import type { CaseResult } from './result.js';
import { longAttentionCases } from './rope_cases.js';
import { sentenceEncodeCase, whiteningFitCase } from './sentence_cases.js';
import { vmfCases } from './vmf_cases.js';
import type { TorchSide } from './torch.js';

/** One built case: run() is one timed iteration. */
export interface CaseInstance {
  run(): void;
  dispose(): void | Promise<void>;
  /** ONNX Runtime's iteration, for the cases that have that side. */
  ort?: () => Promise<void>;
  /** Why ONNX Runtime's side could not be set up. */
  ortError?: string;
  /** What torch_bench.py's setup needs besides the case's name. */
  torchArgs?: Record<string, unknown>;
  /** kexue's output against ONNX Runtime's on the case's input, max |difference|. */
  maxAbsDiffVsOrt?: number;
  /** What one iteration costs besides time (the train steps: addon calls, kernels, fused groups). */
  counts?: Record<string, number>;
}

/** What every case has. */
interface CaseInfo {
  name: string;
  /** What one iteration does, in words (the table's description column). */
  what: string;
  /** Floating-point operations of one iteration (matrix products), for GFLOP/s. */
  flops?: number;
  /** Bytes one iteration must move at least (memory-bound ops), for GB/s. */
  bytes?: number;
  /** End-to-end cases run fewer repetitions. */
  heavy?: boolean;
}

/** What a case's setup may need from the run. */
export interface SetupContext {
  threads: number;
}

/** A case timed in alternating blocks by the driver. */
export interface TimedCase extends CaseInfo {
  setup(ctx: SetupContext): CaseInstance | Promise<CaseInstance>;
}

/** What a measured case gets from the driver. */
export interface MeasureContext {
  threads: number;
  cpus: number;
  rounds: number;
  policy: BlockPolicy;
  /** The PyTorch children that started (none without PyTorch). */
  torch: TorchSide[];
  log: (line: string) => void;
}

/** The fields a measured case fills in (the driver adds case, what and the rates). */
export type MeasuredFields = Omit<CaseResult, 'case' | 'what'>;

/** A case with its own protocol. */
export interface MeasuredCase extends CaseInfo {
  measure(ctx: MeasureContext): Promise<MeasuredFields>;
}

export type BenchCase = TimedCase | MeasuredCase;

/** Whether a case runs its own protocol. */
export function isMeasured(c: BenchCase): c is MeasuredCase {
  return 'measure' in c;
}

/** BERT-small of issue 7; the NER model uses the same encoder sizes on CLUENER-shaped batches. */
export const BERT_SMALL = { vocab: 21128, hidden: 256, layers: 4, heads: 4, ffn: 1024, seq: 128, batch: 16 } as const;
export const CLUENER = { ...BERT_SMALL, seq: 64, types: 10, headSize: 64 } as const;

/**
 * T5 PEGASUS-style mT5 v1.1 at "small" widths (vocab 50000, d_model 512, 6 heads of 64, gated-GELU
 * FFN 1024, 32 relative buckets) with 2 encoder + 2 decoder layers (not small's 8 + 8) so that a step
 * fits a 2-core machine; the train step's batch is 8 × source 128 → target 32; generation reads
 * source 128 and makes 32 tokens. Dropout off (rate 0) on both sides.
 */
export const T5_SMALL = { vocab: 50000, dModel: 512, dKv: 64, heads: 6, dFf: 1024, layers: 2, batch: 8, source: 128, target: 32, newTokens: 32 } as const;

function t5SmallConfig(): Partial<T5Config> {
  const c = T5_SMALL;
  // the defaults are T5 PEGASUS's: gated gelu_new, 32 buckets to distance 128, cross-attention position bias, scaled logits
  return { vocabSize: c.vocab, dModel: c.dModel, dKv: c.dKv, numHeads: c.heads, dFf: c.dFf, numLayers: c.layers, numDecoderLayers: c.layers, dropoutRate: 0 };
}

const T5_SIZES = `vocab ${T5_SMALL.vocab}, d_model ${T5_SMALL.dModel}, ${T5_SMALL.heads} heads × d_kv ${T5_SMALL.dKv}, gated-GELU FFN ${T5_SMALL.dFf}, ${T5_SMALL.layers} + ${T5_SMALL.layers} layers`;

/**
 * Generation of 32 tokens (end token held off: minNewTokens = maxNewTokens) from random weights,
 * source 128, with the KV cache; one iteration is the whole generation, encoder included.
 */
function t5GenerateCase(mode: 'greedy' | 'beam', beams: number, batch: number): TimedCase {
  const c = T5_SMALL;
  const tokens = batch * c.newTokens;
  const how = mode === 'greedy' ? 'greedy' : `beam search (${beams} beams; every row's beams batched on both sides)`;
  return {
    name: `t5-generate-${mode === 'greedy' ? 'greedy' : `beam${beams}`}-${batch}`,
    what: `T5 (${T5_SIZES}) ${how}, batch ${batch} × source ${c.source}, KV cache, ${c.newTokens} new tokens per row (${tokens} in all; end token held off), no gradients; ms per whole generation (tokens/s = ${tokens}·1000 / ms)`,
    // greedy batch 1 takes ~0.3 s an iteration; the others a second or more
    heavy: mode === 'beam' || batch > 1,
    setup() {
      const model = new T5ForConditionalGeneration(t5SmallConfig(), { seed: 0 }).eval();
      const ids = kx.tensor(randInt(batch * c.source, c.vocab, 24), [batch, c.source], { dtype: 'int32' });
      const mask = kx.tensor(new Uint8Array(batch * c.source).fill(1), [batch, c.source], { dtype: 'uint8' });
      const options = { mode, numBeams: beams, maxNewTokens: c.newTokens, minNewTokens: c.newTokens, attentionMask: mask };
      return {
        run: () => kx.tidy(() => void generate(model, ids, options)),
        dispose: () => {
          kx.dispose([ids, mask]);
          model.dispose();
        },
        torchArgs: { mode, beams, batch },
      };
    },
  };
}

/** A case whose iteration is one op on fixed inputs; the result is freed at once. */
function opCase(c: CaseInfo, make: () => { inputs: kx.Tensor[]; op: () => kx.TensorContainer }): TimedCase {
  return {
    ...c,
    setup() {
      const { inputs, op } = make();
      return {
        run: () => kx.tidy(() => void op()),
        dispose: () => kx.dispose(inputs),
      };
    },
  };
}

function matmulCase(name: string, m: number, k: number, n: number, transB: boolean): TimedCase {
  return opCase({ name, what: `sgemm [${m}, ${k}]·[${k}, ${n}]${transB ? ' (b stored [n, k], transB)' : ''}`, flops: 2 * m * k * n }, () => {
    const a = rand([m, k], 1);
    const b = transB ? rand([n, k], 2) : rand([k, n], 2);
    return { inputs: [a, b], op: () => kx.matmul(a, b, { transB }) };
  });
}

/** One optimizer step over a 10M-parameter tensor; bytesPerParam is the traffic of one step. */
function optimizerStepCase(name: string, what: string, bytesPerParam: number, seed: number, make: () => Tiger | AdamW): TimedCase {
  const n = 10_000_000;
  return {
    name,
    what,
    bytes: n * bytesPerParam,
    setup() {
      const p = rand([n], seed);
      const g = rand([n], seed + 1, 1e-3);
      const opt = make();
      return {
        run: () => void opt.step({ w: p }, { w: g }),
        dispose: () => {
          kx.dispose([p, g]);
          opt.dispose();
        },
      };
    },
  };
}

const ROWS = 8192;
const COLS = 1024;

/**
 * FUSION.md's E1, res + mask·(x + bias)·s over [rows, cols] float32 (bias a [cols] row, s a number):
 * eager (four ops, three intermediates) or through kx.compile (one fused group, one addon call per
 * call; traced in setup, so the timed calls are replays).
 */
function e1Case(mode: 'eager' | 'compiled', size: string, rows: number, cols: number): TimedCase {
  const e1 = (res: kx.Tensor, mask: kx.Tensor, x: kx.Tensor, bias: kx.Tensor, s: number) => kx.add(res, kx.mul(kx.mul(mask, kx.add(x, bias)), s));
  return {
    name: `e1-${mode}-${size}`,
    what: `E1 = res + mask·(x + bias)·s on [${rows}, ${cols}] float32, ${mode === 'eager' ? 'eager (4 ops)' : 'kx.compile (1 fused group)'}`,
    // the compulsory traffic: res, mask and x read, the result written
    bytes: rows * cols * 16,
    setup() {
      const res = rand([rows, cols], 31);
      const x = rand([rows, cols], 32);
      const bias = rand([cols], 33);
      const coin = rand([rows, cols], 34);
      const mask = kx.tensor(Float32Array.from(coin.toFloat32Array(), (v) => (v > 0 ? 1 : 0)), [rows, cols]);
      coin.dispose();
      const f = mode === 'eager' ? e1 : kx.compile(e1);
      kx.tidy(() => void f(res, mask, x, bias, 0.5));
      return {
        run: () => kx.tidy(() => void f(res, mask, x, bias, 0.5)),
        dispose: () => kx.dispose([res, mask, x, bias]),
      };
    },
  };
}

/**
 * An AdamW update of θ, m, v written in plain ops (no optim_* op), lr and the bias corrections as
 * 0-d tensors so that a new step does not retrace: eager (16 ops, 13 intermediates), or through
 * kx.compile (one fused group with three outputs: θ, m, v read once, θ', m', v' written once).
 */
function adamwPlain(th: kx.Tensor, m: kx.Tensor, v: kx.Tensor, g: kx.Tensor, lr: kx.Tensor, bc1: kx.Tensor, bc2: kx.Tensor): kx.Tensor[] {
  const [beta1, beta2, eps, wd] = [0.9, 0.999, 1e-8, 0.01];
  const m2 = kx.add(kx.mul(m, beta1), kx.mul(g, 1 - beta1));
  const v2 = kx.add(kx.mul(v, beta2), kx.mul(kx.mul(g, g), 1 - beta2));
  const update = kx.div(kx.div(m2, bc1), kx.add(kx.sqrt(kx.div(v2, bc2)), eps));
  return [kx.sub(th, kx.mul(lr, kx.add(update, kx.mul(th, wd)))), m2, v2];
}

function adamwPlainCase(mode: 'eager' | 'compiled', size: string, n: number): TimedCase {
  return {
    name: `adamw-plain-${mode}-${size}`,
    what: `AdamW of θ, m, v in plain ops on ${n} float32, ${mode === 'eager' ? 'eager (16 ops)' : 'kx.compile (1 fused group, 3 outputs)'}`,
    // the compulsory traffic: θ, m, v, g read, θ', m', v' written
    bytes: n * 28,
    setup() {
      const [th, m, g] = [rand([n], 41), rand([n], 42), rand([n], 43)];
      const v = kx.tidy(() => kx.mul(g, g));
      const scalars = [kx.tensor([1e-3], []), kx.tensor([0.1], []), kx.tensor([0.001], [])] as const;
      const f = mode === 'eager' ? adamwPlain : kx.compile(adamwPlain);
      kx.tidy(() => void f(th, m, v, g, ...scalars));
      return {
        run: () => kx.tidy(() => void f(th, m, v, g, ...scalars)),
        dispose: () => kx.dispose([th, m, v, g, ...scalars]),
      };
    },
  };
}

/**
 * The activation groups of the emitter's transcendentals: sigmoid and SiLU, GELU and tanh (5 ops
 * each), and a backward-shaped one, GELU's derivative (as a training step's backward has it, dx =
 * dy·gelu'(x)) scaled and added to its dy (3 ops).
 */
const ACTIVATION_GROUPS = {
  'sigmoid-silu': { what: 'sigmoid(a)·b + silu(b)·0.5', ops: 5, fn: (a: kx.Tensor, b: kx.Tensor) => kx.add(kx.mul(kx.sigmoid(a), b), kx.mul(kx.silu(b), 0.5)) },
  'gelu-tanh': { what: 'gelu(a)·b + tanh(b)', ops: 5, fn: (a: kx.Tensor, b: kx.Tensor) => kx.add(kx.mul(kx.gelu(a), b), kx.tanh(b)) },
  'gelu-backward': {
    what: "b·gelu'(a)·0.5 + b",
    ops: 3,
    fn: (a: kx.Tensor, b: kx.Tensor) => kx.add(kx.mul(kx.runKernel('unary_backward', [a, a, b], { fn: 'gelu' })[0]!, 0.5), b),
  },
} as const;

/**
 * A chain of activations over two 16M float32 tensors, eager or through kx.compile (one fused
 * group: machine code with the emitter, `KEXUE_FUSION=interp` for the block interpreter).
 */
function activationsCase(mode: 'eager' | 'compiled', group: keyof typeof ACTIVATION_GROUPS): TimedCase {
  const n = 1 << 24;
  const { what, ops, fn } = ACTIVATION_GROUPS[group];
  return {
    name: `activations-${group}-${mode}-16m`,
    what: `${what} on ${n} float32, ${mode === 'eager' ? `eager (${ops} ops)` : 'kx.compile (1 fused group)'}`,
    // the compulsory traffic: a and b read, the result written
    bytes: n * 12,
    setup() {
      const [a, b] = [rand([n], 51), rand([n], 52)];
      const f = mode === 'eager' ? fn : kx.compile(fn);
      kx.tidy(() => void f(a, b));
      return {
        run: () => kx.tidy(() => void f(a, b)),
        dispose: () => kx.dispose([a, b]),
      };
    },
  };
}

/** What a train-step case builds: the parameters, the loss of its fixed batch, the optimizer. */
interface TrainStepParts {
  params: Record<string, kx.Tensor>;
  loss: () => kx.Tensor;
  opt: AdamW;
  inputs: kx.Tensor[];
  free: () => void;
}

/** A train step (loss, gradients, optimizer step), run eagerly or as one kx.compile replay. */
function trainStep(build: () => TrainStepParts, mode: 'eager' | 'compiled' = 'eager'): CaseInstance {
  const { params, loss, opt, inputs, free } = build();
  const eagerStep = () => {
    const { value, grads } = kx.valueAndGrad(() => loss(), params);
    opt.step(params, grads);
    kx.dispose(Object.values(grads));
    return value;
  };
  const step = mode === 'eager' ? eagerStep : kx.compile(eagerStep, { name: 'train-step' });
  const run = () => kx.tidy(() => void step());
  run(); // a compiled step traces here, not in the timed runs
  return {
    run,
    counts: stepCounts(run, mode === 'eager' ? undefined : (step as kx.CompiledFunction<[], kx.Tensor>).plan()),
    dispose() {
      kx.dispose(inputs);
      opt.dispose();
      free();
    },
  };
}

/**
 * What one step costs besides time: addon calls (the profiler's count), the kernels it runs (eager:
 * one per op; compiled: the program's steps, ops and fused groups) and its fused groups.
 */
function stepCounts(run: () => void, plan: kx.CompiledPlan | undefined): Record<string, number> {
  kx.profiler.reset();
  kx.profiler.enable();
  try {
    run();
  } finally {
    kx.profiler.disable();
  }
  const rows = kx.profiler.rows();
  kx.profiler.reset();
  const total = (kind: 'op' | 'call') => rows.filter((r) => r.kind === kind).reduce((n, r) => n + r.calls, 0);
  return { native_calls: total('call'), kernels: plan ? plan.steps : total('op'), fused_groups: plan ? plan.groups.length : 0 };
}

/** BERT-small's MLM train step on a random batch (the bert-small-train-step cases). */
function bertSmallTrain(): TrainStepParts {
  const c = BERT_SMALL;
  const model = new BertForMaskedLM(
    { kind: 'bert', vocabSize: c.vocab, hiddenSize: c.hidden, numLayers: c.layers, numHeads: c.heads, intermediateSize: c.ffn },
    { seed: 0 },
  ).train();
  const ids = kx.tensor(randInt(c.batch * c.seq, c.vocab, 19), [c.batch, c.seq], { dtype: 'int32' });
  const labels = kx.tensor(randInt(c.batch * c.seq, c.vocab, 20), [c.batch * c.seq], { dtype: 'int32' });
  const loss = () => kx.crossEntropy(kx.reshape(model.forward(ids).logits, [c.batch * c.seq, c.vocab]), labels);
  return { params: model.namedParameters(), loss, opt: new AdamW({ learningRate: 1e-4 }), inputs: [ids, labels], free: () => model.dispose() };
}

/** RoFormer + Efficient GlobalPointer's NER train step on a CLUENER-shaped batch (the roformer-gp-train-step cases). */
function roformerGpTrain(): TrainStepParts {
  const c = CLUENER;
  const encoder = new BertModel(
    { kind: 'roformer', vocabSize: c.vocab, hiddenSize: c.hidden, numLayers: c.layers, numHeads: c.heads, intermediateSize: c.ffn },
    { seed: 0 },
  ).train();
  const head = new EfficientGlobalPointer({ hidden: c.hidden, heads: c.types, headSize: c.headSize, rng: 1 });
  const { batch: B, seq: T } = c;
  const ids = kx.tensor(randInt(B * T, c.vocab, 21), [B, T], { dtype: 'int32' });
  const lens = randInt(B, T / 2 + 1, 22).map((l) => l + T / 2);
  const maskData = new Uint8Array(B * T);
  for (let b = 0; b < B; b++) for (let t = 0; t < lens[b]!; t++) maskData[b * T + t] = 1;
  const mask = kx.tensor(maskData, [B, T], { dtype: 'uint8' });
  const labelData = new Float32Array(B * c.types * T * T);
  randInt(labelData.length, 500, 23).forEach((r, i) => (labelData[i] = r === 0 ? 1 : 0));
  const labels = kx.tensor(labelData, [B, c.types, T, T]);
  const params = { ...encoder.namedParameters('encoder.'), ...head.namedParameters('head.') };
  const loss = () => globalPointerLoss(head.forward(encoder.forward(ids, { attentionMask: mask }).lastHiddenState, mask), labels);
  return {
    params,
    loss,
    opt: new AdamW({ learningRate: 2e-5 }),
    inputs: [ids, mask, labels],
    free: () => {
      encoder.dispose();
      head.dispose();
    },
  };
}

/**
 * A BERT forward at one point on kexue, ONNX Runtime and PyTorch, the same weights on all three;
 * `compiled`: kexue's forward through kx.compile (the peers as in the eager case).
 */
function bertInferCase(model: InferModel, batch: number, seq: number, compiled = false): TimedCase {
  const flops = bertForwardFlops(model.sizes, batch, seq);
  const s = model.sizes;
  return {
    name: `${model.name}-infer-${batch}x${seq}${compiled ? '-compiled' : ''}`,
    what: `${model.name} (hidden ${s.hidden}, ${s.layers} layers, ${s.heads} heads, FFN ${s.ffn}) forward without gradients, batch ${batch} × seq ${seq}${compiled ? ', kexue through kx.compile (one addon call a forward)' : ''}; ONNX Runtime and PyTorch on the same weights`,
    flops,
    heavy: flops > 50e9,
    async setup({ threads }) {
      const files = ensureBertFiles(model);
      const x = bertInputs(s, batch, seq);
      const kexue = kexueBert(s, files.weights, compiled);
      const inst: CaseInstance = { run: () => kexue.run(x), dispose: () => kexue.dispose(), torchArgs: { config: s, weights: files.weights, batch, seq } };
      try {
        const ort = await ortBert(files.onnx, threads);
        inst.ort = () => ort.run(x);
        inst.dispose = async () => {
          kexue.dispose();
          await ort.release();
        };
        inst.maxAbsDiffVsOrt = maxAbsDiff(kexue.lastHiddenState(x), await ort.lastHiddenState(x));
      } catch (e) {
        inst.ortError = `ONNX Runtime: ${(e as Error).message}`;
      }
      return inst;
    },
  };
}

export const CASES: BenchCase[] = [
  matmulCase('matmul-1024', 1024, 1024, 1024, false),
  matmulCase('matmul-2048x256x1024', 2048, 256, 1024, false),
  matmulCase('matmul-2048x256x21128', 2048, 256, 21128, true),
  {
    // the cost of an op itself (a GPU training step runs ~1,100–1,500 of them): checks, the addon
    // call, the tensor's bookkeeping; the arithmetic is 4 elements
    name: 'dispatch',
    what: '1,000 adds of two [4] tensors inside one tidy (per-op overhead)',
    setup() {
      const a = rand([4], 11);
      const b = rand([4], 12);
      return {
        run: () =>
          kx.tidy(() => {
            for (let i = 0; i < 1000; i++) kx.add(a, b);
          }),
        dispose: () => kx.dispose([a, b]),
      };
    },
  },
  opCase({ name: 'layernorm', what: `layerNorm [${ROWS}, ${COLS}] with γ, β`, bytes: ROWS * COLS * 8 }, () => {
    const x = rand([ROWS, COLS], 3);
    const g = rand([COLS], 4);
    const b = rand([COLS], 5);
    return { inputs: [x, g, b], op: () => kx.layerNorm(x, g, b, 1e-12) };
  }),
  opCase({ name: 'softmax', what: `softmax [${ROWS}, ${COLS}] over the last axis`, bytes: ROWS * COLS * 8 }, () => {
    const x = rand([ROWS, COLS], 6, 4);
    return { inputs: [x], op: () => kx.softmax(x, -1) };
  }),
  opCase({ name: 'softmax-2048x1000', what: 'softmax [2048, 1000] (cache-resident rows)', bytes: 2048 * 1000 * 8 }, () => {
    const x = rand([2048, 1000], 7, 4);
    return { inputs: [x], op: () => kx.softmax(x, -1) };
  }),
  e1Case('eager', '16m', 16384, 1024),
  e1Case('compiled', '16m', 16384, 1024),
  e1Case('eager', '1k', 4, 256),
  e1Case('compiled', '1k', 4, 256),
  adamwPlainCase('eager', '16m', 1 << 24),
  adamwPlainCase('compiled', '16m', 1 << 24),
  adamwPlainCase('eager', '1k', 1024),
  adamwPlainCase('compiled', '1k', 1024),
  ...(['sigmoid-silu', 'gelu-tanh', 'gelu-backward'] as const).flatMap((g) => [activationsCase('eager', g), activationsCase('compiled', g)]),
  opCase({ name: 'gelu', what: `GELU (erf) on [${ROWS}, ${COLS}]`, bytes: ROWS * COLS * 8 }, () => {
    const x = rand([ROWS, COLS], 8, 3);
    return { inputs: [x], op: () => kx.gelu(x) };
  }),
  {
    name: 'cross-entropy',
    what: 'softmax cross-entropy [2048, 21128], forward + backward (d logits)',
    // forward reads the logits; backward reads them and writes the gradient
    bytes: 2048 * 21128 * 12,
    setup() {
      const x = rand([2048, 21128], 9, 4);
      const y = kx.tensor(randInt(2048, 21128, 10), [2048], { dtype: 'int32' });
      return {
        run: () => kx.tidy(() => void kx.valueAndGrad(([l]) => kx.crossEntropy(l!, y), [x])),
        dispose: () => kx.dispose([x, y]),
      };
    },
  },
  ...(['forward', 'backward'] as const).map((dir): TimedCase => {
    const [B, H, T, D] = [16, 4, 128, 64];
    // q·kᵀ and p·v per (b, h): 4·T²·D forward; backward adds 4 more products (plus the recomputation)
    const fwdFlops = 4 * B * H * T * T * D;
    return {
      name: `attention-${dir}`,
      what: `attention B=${B}, H=${H}, T=${T}, D=${D}${dir === 'backward' ? ', forward + backward (dq, dk, dv)' : ''}`,
      flops: dir === 'forward' ? fwdFlops : fwdFlops * 3,
      setup() {
        const q = rand([B, H, T, D], 11);
        const k = rand([B, H, T, D], 12);
        const v = rand([B, H, T, D], 13);
        const go = rand([B, H, T, D], 14);
        const scale = 1 / Math.sqrt(D);
        return {
          run: () =>
            kx.tidy(() => {
              if (dir === 'forward') return void kx.attention(q, k, v, { scale });
              // the fused pair: forward (out, logsumexp) then the backward kernel, as autograd runs them
              const [out, lse] = kx.runKernel('attention', [q, k, v, null, null], { causal: false, scale });
              kx.runKernel('attention_backward', [q, k, v, null, null, out!, lse!, go], { causal: false, scale });
            }),
          dispose: () => kx.dispose([q, k, v, go]),
        };
      },
    };
  }),
  optimizerStepCase('tiger-10m', 'Tiger step over 10M parameters (PyTorch: torch.optim.AdamW.step on the same tensor)',
    20, 15, () => new Tiger({ learningRate: 1e-3 })), // θ read+write, g read, m read+write
  optimizerStepCase('adamw-10m', 'AdamW step over 10M parameters (both sides)',
    28, 17, () => new AdamW({ learningRate: 1e-3 })), // θ, m, v read+write, g read
  {
    name: 'bert-small-train-step',
    what: 'BERT-small MLM train step (vocab 21128, hidden 256, 4 layers, 4 heads, FFN 1024, seq 128, batch 16, CE over the full vocab, AdamW)',
    heavy: true,
    setup: () => trainStep(bertSmallTrain),
  },
  {
    name: 'bert-small-train-step-compiled',
    what: 'bert-small-train-step as one kx.compile replay (forward + backward + AdamW traced once; PyTorch: the same eager step)',
    heavy: true,
    setup: () => trainStep(bertSmallTrain, 'compiled'),
  },
  {
    name: 'roformer-gp-train-step',
    what: 'RoFormer (BERT-small sizes) + Efficient GlobalPointer (10 types, d 64) train step on CLUENER-shaped batches (batch 16, seq 64, padded), multilabel GP loss, AdamW',
    heavy: true,
    setup: () => trainStep(roformerGpTrain),
  },
  {
    name: 'roformer-gp-train-step-compiled',
    what: 'roformer-gp-train-step as one kx.compile replay (forward + backward + AdamW traced once; PyTorch: the same eager step)',
    heavy: true,
    setup: () => trainStep(roformerGpTrain, 'compiled'),
  },
  {
    name: 't5-small-train-step',
    what: `T5 PEGASUS-style mT5 v1.1 train step (${T5_SIZES}, dropout off), batch ${T5_SMALL.batch} × source ${T5_SMALL.source} → target ${T5_SMALL.target}, teacher-forced CE over the full vocab, AdamW`,
    heavy: true,
    setup() {
      const c = T5_SMALL;
      return trainStep(() => {
        const model = new T5ForConditionalGeneration(t5SmallConfig(), { seed: 0 }).train();
        const ids = kx.tensor(randInt(c.batch * c.source, c.vocab, 25), [c.batch, c.source], { dtype: 'int32' });
        // teacher forcing: the decoder reads decoder_start_token_id (0), then the labels shifted right
        const target = Int32Array.from(randInt(c.batch * c.target, c.vocab, 26));
        const shifted = new Int32Array(c.batch * c.target);
        for (let b = 0; b < c.batch; b++) shifted.set(target.subarray(b * c.target, (b + 1) * c.target - 1), b * c.target + 1);
        const decoderIds = kx.tensor(shifted, [c.batch, c.target], { dtype: 'int32' });
        const labels = kx.tensor(target, [c.batch, c.target], { dtype: 'int32' });
        const loss = () => seq2seqLoss(model.forward({ inputIds: ids, decoderInputIds: decoderIds }).logits, labels);
        return { params: model.namedParameters(), loss, opt: new AdamW({ learningRate: 1e-4 }), inputs: [ids, decoderIds, labels], free: () => model.dispose() };
      });
    },
  },
  t5GenerateCase('greedy', 1, 1),
  t5GenerateCase('greedy', 1, 16),
  t5GenerateCase('beam', 3, 1),
  t5GenerateCase('beam', 3, 16),
  {
    name: 'idle-neighbour',
    what: 'a CPU-bound neighbour (one busy thread per core) beside a process that does a [512, 512]·[512, 512] product every 250 ms and is idle in between; ms per unit of the neighbour\'s work (lower: the idle process costs it less)',
    measure: (ctx) => measureIdleNeighbour(ctx),
  },
  ...INFER_MODELS.flatMap((m) => INFER_POINTS.map(([b, t]) => bertInferCase(m, b, t))),
  ...INFER_MODELS.flatMap((m) => INFER_POINTS.map(([b, t]) => bertInferCase(m, b, t, true))),
  ...INFER_MODELS.map(
    (m): MeasuredCase => ({
      name: `${m.name}-load`,
      what: `${m.name}: load time in a fresh process (kexue: BertModel from the safetensors; ONNX Runtime: InferenceSession.create; PyTorch: module + state dict) and peak memory after running ${INFER_POINTS.map(([b, t]) => `${b}×${t}`).join(', ')}`,
      measure: (ctx) => measureLoadCase(m, ctx),
    }),
  ),
  sentenceEncodeCase(),
  whiteningFitCase(),
  ...vmfCases(),
  ...longAttentionCases(),
];

/** The case of that name, or undefined. */
export function findCase(name: string): BenchCase | undefined {
  return CASES.find((c) => c.name === name);
}
