/**
 * The end-to-end GPU benchmark (issue 6): one masked-LM training step of a BERT-base-sized encoder
 * (vocab 21128, hidden 768, 12 layers, 12 heads, FFN 3072, seq 128, batch 32; cross-entropy over
 * the full vocabulary at every position; AdamW) on 'cuda', under bf16 and under fp16 (with dynamic
 * loss scaling), kexue beside PyTorch (bench/torch_gpu_e2e.py: the same model in torch.nn under
 * torch.autocast, GradScaler for fp16, fused AdamW) in one process tree, alternating.
 *
 *   node --conditions=source --import tsx bench/src/gpu_e2e.ts [--out FILE] [--warmup N] [--steps N]
 *        [--rounds N] [--size base|tiny] [--device cuda|cuda:N|cpu] [--no-torch]
 *
 * Each side warms up, then runs its timed steps in `rounds` blocks, kexue's and PyTorch's blocks
 * alternating so that both see the same clocks and temperature; every step is timed alone, with the
 * device synchronized before the clock is read, and the median is reported. Writes
 * {"results": [{case, dtype, kexue_ms, torch_ms, ratio, ...}], ...} to --out and prints a Markdown
 * table. The interpreter for PyTorch is $KEXUE_GPU_PYTHON (default python3). Where kexue sees no
 * GPU it says so, writes one row with the reason and exits 0; a failed measurement exits 1.
 * `--size tiny --device cpu` tries the whole driver on a machine without a GPU (PyTorch then runs
 * float32: its CPU autocast is left off).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import * as kx from '@kexue/core-cuda';
import { BertForMaskedLM, PrecisionPolicy, type PrecisionName } from '@kexue/models';
import { AdamW, type LossScaler } from '@kexue/optimizers';

import { randInt } from './random.js';
import { median } from './stats.js';

/** The row's case name: 'bert-base-mlm-train-step' for the measured size. */
export function caseName(size: SizeName): string {
  return `bert-${size}-mlm-train-step`;
}

/** The measured model (BERT-base with the Chinese vocabulary) and a tiny one to try the driver with. */
export const SIZES = {
  base: { vocab: 21128, hidden: 768, layers: 12, heads: 12, ffn: 3072, seq: 128, batch: 32 },
  tiny: { vocab: 64, hidden: 32, layers: 2, heads: 2, ffn: 64, seq: 16, batch: 4 },
} as const;
export type SizeName = keyof typeof SIZES;
type Sizes = (typeof SIZES)[SizeName];

const DTYPES: readonly PrecisionName[] = ['bf16', 'fp16'];
const LEARNING_RATE = 1e-4;
export const TORCH_SCRIPT = fileURLToPath(new URL('../torch_gpu_e2e.py', import.meta.url));
/** The longest a PyTorch request may take (a setup, or one block of steps): $KEXUE_GPU_TORCH_TIMEOUT_S, default 120. */
const TORCH_TIMEOUT_S = Number(process.env.KEXUE_GPU_TORCH_TIMEOUT_S ?? 120);

export interface E2eOptions {
  out: string | null;
  warmup: number;
  steps: number;
  rounds: number;
  size: SizeName;
  /** 'cuda' (the benchmark), 'cuda:N', or 'cpu' (to try the driver). */
  device: string;
  torch: boolean;
}

/** One row of the report; times in milliseconds per step (medians), ratio = kexue / PyTorch. */
export interface E2eRow {
  case: string;
  dtype: PrecisionName | null;
  kexue_ms: number | null;
  torch_ms: number | null;
  ratio: number | null;
  /** Model FLOP/s of the medians: 3× the forward's matrix products (see stepFlops). */
  kexue_tflops?: number | null;
  torch_tflops?: number | null;
  /** Every timed step, in the order run. */
  kexue_steps_ms?: number[];
  torch_steps_ms?: number[];
  /** The unscaled loss of the last step (ln 21128 ≈ 9.96 at the start on random labels). */
  kexue_loss?: number | null;
  torch_loss?: number | null;
  /** fp16: steps skipped for non-finite gradients, warm-up included (the scale starts at 2^16 on both sides). */
  kexue_skipped_steps?: number;
  torch_skipped_steps?: number;
  /** Peak device bytes since the start of the run (kexue's caching allocator, torch.cuda.max_memory_allocated). */
  kexue_peak_bytes?: number;
  torch_peak_bytes?: number;
  kexue_error?: string;
  torch_error?: string;
  /** Why nothing was measured (no GPU). */
  skipped?: string;
}

export interface E2eReport {
  results: E2eRow[];
  gpu: string | null;
  torch: string | null;
  fusedAdamW: boolean | null;
  node: string;
  device: string;
  size: SizeName;
  shapes: Sizes;
  warmup: number;
  steps: number;
  rounds: number;
}

/**
 * Floating-point operations of one training step: the forward's matrix products (q, k, v, output
 * and FFN projections, the MLM transform and the vocabulary decoder, plus q·kᵀ and p·v) times 3
 * for forward + backward. Elementwise work, norms and the optimizer are left out, as usual.
 */
export function stepFlops(c: Sizes): number {
  const tokens = c.batch * c.seq;
  const weights = c.layers * (4 * c.hidden * c.hidden + 2 * c.hidden * c.ffn) + c.hidden * c.hidden + c.hidden * c.vocab;
  const attention = c.layers * 4 * c.batch * c.seq * c.seq * c.hidden;
  return 3 * (2 * tokens * weights + attention);
}

/** What one block of timed steps gives back (both sides). */
interface StepTimes {
  ms: number[];
  loss: number;
  skipped: number;
  peakBytes: number;
}

/** kexue's side: the model built once on the device; a fresh optimizer (and scaler) per dtype. */
class KexueSide {
  readonly #c: Sizes;
  readonly #gpu: boolean;
  readonly #model: BertForMaskedLM;
  readonly #params: Record<string, kx.Tensor>;
  readonly #inputs: { ids: kx.Tensor; types: kx.Tensor; labels: kx.Tensor };
  #policy = new PrecisionPolicy();
  #scaler: LossScaler | null = null;
  #opt: AdamW | null = null;
  #skipped = 0;

  constructor(c: Sizes, device: string) {
    this.#c = c;
    this.#gpu = device !== 'cpu';
    // built on the CPU (the initialiser runs in JS), then moved; dropout 0.1 as in training
    this.#model = new BertForMaskedLM(
      { kind: 'bert', vocabSize: c.vocab, hiddenSize: c.hidden, numLayers: c.layers, numHeads: c.heads, intermediateSize: c.ffn },
      { seed: 0 },
    )
      .train()
      .to(device);
    this.#params = this.#model.namedParameters();
    const n = c.batch * c.seq;
    this.#inputs = {
      ids: kx.tensor(randInt(n, c.vocab, 19), [c.batch, c.seq], { dtype: 'int32', device }),
      // given, so that the model does not make its all-zero default on the CPU
      types: kx.zeros([c.batch, c.seq], { dtype: 'int32', device }),
      labels: kx.tensor(randInt(n, c.vocab, 20), [n], { dtype: 'int32', device }),
    };
  }

  get parameterCount(): number {
    return this.#model.parameterCount();
  }

  setup(dtype: PrecisionName): void {
    this.#opt?.dispose();
    this.#policy = new PrecisionPolicy({ compute: dtype });
    this.#scaler = this.#policy.createScaler();
    this.#opt = new AdamW({ learningRate: LEARNING_RATE });
    this.#skipped = 0;
  }

  /** One training step (as the trainer does it); returns the loss tensor, unread so that nothing waits. */
  #step(): kx.Tensor {
    const { batch: B, seq: T, vocab: V } = this.#c;
    const { ids, types, labels } = this.#inputs;
    const model = this.#model;
    const scaler = this.#scaler;
    // the loss scale seeds the backward pass, so crossEntropy's forward computes the scaled gradient
    const { value, grads } = kx.valueAndGrad(
      () => this.#policy.forward(model, () => kx.crossEntropy(kx.reshape(model.forward(ids, { tokenTypeIds: types }).logits, [B * T, V]), labels)),
      this.#params,
      { outputGradient: scaler?.scale ?? 1 },
    );
    if (scaler) {
      if (!scaler.step(this.#opt!, this.#params, grads).applied) this.#skipped++;
    } else {
      this.#opt!.step(this.#params, grads);
    }
    kx.dispose(grads);
    return value;
  }

  run(iters: number): StepTimes {
    const ms: number[] = [];
    let loss = NaN;
    const sync = () => this.#gpu && kx.cuda.synchronize();
    sync();
    for (let i = 0; i < iters; i++) {
      const t0 = process.hrtime.bigint();
      const value = this.#step();
      sync();
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
      loss = value.item();
      value.dispose();
    }
    return { ms, loss, skipped: this.#skipped, peakBytes: kx.memory().cuda.peak };
  }

  dispose(): void {
    this.#opt?.dispose();
    kx.dispose(Object.values(this.#inputs));
    this.#model.dispose();
  }
}

interface TorchReply {
  ok: boolean;
  error?: string;
  torch?: string;
  cuda?: boolean;
  gpu?: string | null;
  reason?: string | null;
  fused?: boolean;
  ms?: number[];
  loss?: number;
  skipped?: number;
  peak_bytes?: number;
}

/** PyTorch's side: bench/torch_gpu_e2e.py as a child speaking JSON lines. */
class TorchSide {
  readonly #proc: ChildProcessWithoutNullStreams;
  readonly #lines: AsyncIterator<string>;
  readonly #stderr: string[] = [];
  readonly #failed: Promise<never>;

  constructor(python: string) {
    this.#proc = spawn(python, [TORCH_SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#proc.stderr.on('data', (d: Buffer) => this.#stderr.push(d.toString()));
    this.#proc.stdin.on('error', () => {}); // a dead child shows in ask() (its exit), not as a crash here
    this.#lines = createInterface({ input: this.#proc.stdout })[Symbol.asyncIterator]();
    this.#failed = new Promise<never>((_, reject) => this.#proc.on('error', (e) => reject(new Error(`cannot start ${python}: ${e.message}`))));
    this.#failed.catch(() => {}); // observed by ask(); an unstarted process must not crash the run
  }

  /** Sends one request and waits for its reply, at most `timeoutS` seconds (then PyTorch is killed). */
  async ask(req: Record<string, unknown>, timeoutS = TORCH_TIMEOUT_S): Promise<TorchReply> {
    this.#proc.stdin.write(`${JSON.stringify(req)}\n`);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.#proc.kill('SIGKILL');
        reject(new Error(`PyTorch gave no reply to '${String(req.cmd)}' in ${timeoutS} s (killed)`));
      }, timeoutS * 1000);
    });
    const next = await Promise.race([this.#lines.next(), this.#failed, timeout]).finally(() => clearTimeout(timer));
    if (next.done) throw new Error(`PyTorch exited: ${this.#stderr.join('').trim().split('\n').slice(-3).join(' | ') || 'no output'}`);
    const reply = JSON.parse(next.value) as TorchReply;
    if (!reply.ok) throw new Error(reply.error ?? 'PyTorch failed');
    return reply;
  }

  async run(iters: number): Promise<StepTimes> {
    const r = await this.ask({ cmd: 'run', iters });
    return { ms: r.ms!, loss: r.loss!, skipped: r.skipped!, peakBytes: r.peak_bytes! };
  }

  close(): void {
    if (this.#proc.exitCode === null && this.#proc.stdin.writable) this.#proc.stdin.end(`${JSON.stringify({ cmd: 'quit' })}\n`);
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

const round2 = (x: number) => Math.round(x * 100) / 100;

/**
 * Runs the benchmark; `log` gets the progress lines, `save` the report after each row (so that a run
 * cut short by its time limit still leaves what it measured).
 */
export async function runE2e(o: E2eOptions, log: (s: string) => void, save: (r: E2eReport) => void = () => {}): Promise<E2eReport> {
  const c = SIZES[o.size];
  const report: E2eReport = {
    results: [],
    gpu: null,
    torch: null,
    fusedAdamW: null,
    node: process.version,
    device: o.device,
    size: o.size,
    shapes: c,
    warmup: o.warmup,
    steps: o.steps,
    rounds: o.rounds,
  };
  if (o.device !== 'cpu' && !kx.cuda.isAvailable()) {
    const reason = `CUDA is not available to kexue: ${kx.cuda.unavailableReason() || 'no GPU'}`;
    log(`gpu_e2e: ${reason}; nothing measured`);
    report.results.push({ case: caseName(o.size), dtype: null, kexue_ms: null, torch_ms: null, ratio: null, skipped: reason });
    return report;
  }
  if (o.device !== 'cpu') report.gpu = kx.devices().find((d) => d.name === (o.device === 'cuda' ? 'cuda:0' : o.device))?.cuda?.name ?? o.device;
  const flops = stepFlops(c);
  log(`gpu_e2e: ${caseName(o.size)} (${o.size}: ${JSON.stringify(c)}) on ${report.gpu ?? 'the CPU'}, ${(flops / 1e12).toFixed(3)} TFLOP a step`);

  let torch: TorchSide | null = null;
  let torchError: string | null = null;
  if (o.torch) {
    const python = process.env.KEXUE_GPU_PYTHON ?? 'python3';
    torch = new TorchSide(python);
    try {
      const hello = await torch.ask({ cmd: 'hello' });
      report.torch = hello.torch ?? null;
      if (o.device !== 'cpu' && !hello.cuda) throw new Error(hello.reason ?? 'PyTorch sees no GPU');
      log(`PyTorch ${hello.torch} (${python})${o.device === 'cpu' ? '' : ` on ${hello.gpu}`}`);
    } catch (e) {
      torchError = message(e);
      log(`PyTorch: ${torchError}`);
      torch.close();
      torch = null;
    }
  }

  let kexue: KexueSide | null = null;
  let kexueError: string | null = null;
  try {
    const t0 = performance.now();
    kexue = new KexueSide(c, o.device);
    log(`kexue: ${kexue.parameterCount} parameters, built and moved to ${o.device} in ${((performance.now() - t0) / 1e3).toFixed(1)} s`);
  } catch (e) {
    kexueError = message(e);
    log(`kexue: ${kexueError}`);
  }

  // the timed steps split as evenly as they go into the rounds
  const roundSteps = Array.from({ length: o.rounds }, (_, r) => Math.floor(o.steps / o.rounds) + (r < o.steps % o.rounds ? 1 : 0));
  try {
    for (const dtype of DTYPES) {
      const row: E2eRow = { case: caseName(o.size), dtype, kexue_ms: null, torch_ms: null, ratio: null };
      const k: StepTimes[] = [];
      const t: StepTimes[] = [];
      let kErr = kexueError;
      let tErr = torchError;
      // each side's failure is its own: the other side still runs
      const kexueBlock = (iters: number) => {
        if (kErr !== null || !kexue) return;
        try {
          k.push(kexue.run(iters));
        } catch (e) {
          kErr = message(e);
        }
      };
      const torchBlock = async (iters: number) => {
        if (tErr !== null || !torch) return;
        try {
          t.push(await torch.run(iters));
        } catch (e) {
          tErr = message(e);
        }
      };
      if (kErr === null) {
        try {
          kexue!.setup(dtype);
        } catch (e) {
          kErr = message(e);
        }
      }
      if (tErr === null && torch) {
        try {
          report.fusedAdamW = (await torch.ask({ cmd: 'setup', dtype, size: o.size, device: o.device })).fused ?? null;
        } catch (e) {
          tErr = message(e);
        }
      }
      kexueBlock(o.warmup);
      await torchBlock(o.warmup);
      k.length = t.length = 0; // warm-up steps are not timed
      for (const n of roundSteps) {
        kexueBlock(n);
        await torchBlock(n);
      }
      const fill = (side: 'kexue' | 'torch', blocks: StepTimes[], err: string | null) => {
        if (err !== null) {
          row[`${side}_error`] = err;
          return null;
        }
        const last = blocks[blocks.length - 1];
        if (!last) return null; // not run (--no-torch)
        const ms = blocks.flatMap((b) => b.ms);
        const med = median(ms);
        row[`${side}_ms`] = round2(med);
        row[`${side}_tflops`] = round2(flops / (med / 1e3) / 1e12);
        row[`${side}_steps_ms`] = ms.map(round2);
        row[`${side}_loss`] = Number(last.loss.toFixed(4));
        row[`${side}_skipped_steps`] = last.skipped;
        row[`${side}_peak_bytes`] = last.peakBytes;
        return med;
      };
      const km = fill('kexue', k, kErr);
      const tm = fill('torch', t, tErr);
      if (km !== null && tm !== null) row.ratio = round2(km / tm);
      const said = (ms: number | null, err: string | null) => (ms !== null ? `${round2(ms)} ms` : err !== null ? `failed: ${err}` : 'not run');
      log(`${dtype}: kexue ${said(km, kErr)}, PyTorch ${said(tm, tErr)}`);
      report.results.push(row);
      save(report);
    }
  } finally {
    torch?.close();
    try {
      kexue?.dispose();
    } catch (e) {
      // after a kernel failure the CUDA context is unusable and freeing fails too; the report stands
      log(`kexue: freeing the model failed: ${message(e)}`);
    }
  }
  return report;
}

/** The results as a Markdown table. */
export function toMarkdown(r: E2eReport): string {
  const cell = (x: number | null | undefined) => (x === null || x === undefined ? '—' : String(x));
  const lines = [
    `GPU: ${r.gpu ?? 'none'}; PyTorch ${r.torch ?? '—'} (fused AdamW: ${r.fusedAdamW ?? '—'}); ${r.warmup} warm-up + ${r.steps} timed steps each, medians`,
    '',
    '| case | dtype | kexue ms | PyTorch ms | kexue / PyTorch | kexue TFLOP/s | PyTorch TFLOP/s | loss (kexue, PyTorch) | notes |',
    '|---|---|---:|---:|---:|---:|---:|---|---|',
  ];
  for (const x of r.results) {
    const notes = [x.skipped, x.kexue_error && `kexue: ${x.kexue_error}`, x.torch_error && `PyTorch: ${x.torch_error}`]
      .concat(x.kexue_skipped_steps || x.torch_skipped_steps ? [`skipped steps ${x.kexue_skipped_steps ?? '—'} / ${x.torch_skipped_steps ?? '—'}`] : [])
      .filter(Boolean)
      .join('; ')
      .replace(/\|/g, '\\|');
    const loss = x.kexue_loss === undefined && x.torch_loss === undefined ? '—' : `${cell(x.kexue_loss)}, ${cell(x.torch_loss)}`;
    lines.push(`| ${x.case} | ${x.dtype ?? '—'} | ${cell(x.kexue_ms)} | ${cell(x.torch_ms)} | ${cell(x.ratio)} | ${cell(x.kexue_tflops)} | ${cell(x.torch_tflops)} | ${loss} | ${notes} |`);
  }
  return lines.join('\n');
}

function positiveInt(v: string | undefined, flag: string): number {
  const x = Number(v);
  if (!Number.isInteger(x) || x <= 0) throw new kx.ArgumentError(`${flag} needs a positive integer, got ${String(v)}`);
  return x;
}

/** Parses the command line (without node and the script). */
export function parseArgs(argv: string[]): E2eOptions {
  const o: E2eOptions = { out: null, warmup: 3, steps: 10, rounds: 2, size: 'base', device: 'cuda', torch: true };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i]!;
    const [flag, inline] = f.includes('=') ? [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)] : [f, undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--out':
        o.out = String(value());
        break;
      case '--warmup':
        o.warmup = positiveInt(value(), flag);
        break;
      case '--steps':
        o.steps = positiveInt(value(), flag);
        break;
      case '--rounds':
        o.rounds = positiveInt(value(), flag);
        break;
      case '--size': {
        const s = String(value());
        if (!(s in SIZES)) throw new kx.ArgumentError(`--size is base or tiny, got ${s}`);
        o.size = s as SizeName;
        break;
      }
      case '--device': {
        const d = String(value());
        if (!/^(cpu|cuda(:\d+)?)$/.test(d)) throw new kx.ArgumentError(`--device is cuda, cuda:N or cpu, got ${d}`);
        o.device = d;
        break;
      }
      case '--no-torch':
        o.torch = false;
        break;
      default:
        throw new kx.ArgumentError(`unknown argument '${f}' (--out FILE, --warmup N, --steps N, --rounds N, --size base|tiny, --device cuda|cuda:N|cpu, --no-torch)`);
    }
  }
  if (o.rounds > o.steps) throw new kx.ArgumentError(`--rounds (${o.rounds}) must not exceed --steps (${o.steps})`);
  return o;
}

/** The command: returns the exit code (0 also when there is no GPU; 1 when a measurement failed). */
export async function main(argv: string[], log: (s: string) => void = (s) => console.log(s)): Promise<number> {
  const o = parseArgs(argv);
  const save = (r: E2eReport) => {
    if (!o.out) return;
    mkdirSync(path.dirname(path.resolve(o.out)), { recursive: true });
    writeFileSync(`${o.out}.part`, `${JSON.stringify(r, null, 2)}\n`);
    renameSync(`${o.out}.part`, o.out); // whole reports only, also when the run is killed
  };
  const report = await runE2e(o, log, save);
  save(report);
  log('');
  log(toMarkdown(report));
  if (o.out) log(`wrote ${o.out}`);
  return report.results.some((r) => r.kexue_error !== undefined || r.torch_error !== undefined) ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      console.error(`gpu_e2e: ${e.message}`);
      process.exit(2);
    },
  );
}
