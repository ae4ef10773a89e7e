/**
 * The PyTorch side: bench/torch_bench.py as a child process speaking JSON lines, so that kexue and
 * PyTorch run in one benchmark, alternating, on the same machine at the same moment. PyTorch runs
 * in two children, one per OpenMP wait policy (TORCH_WAIT_POLICIES), and the faster is reported.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const TORCH_SCRIPT = fileURLToPath(new URL('../torch_bench.py', import.meta.url));

/** The interpreter with PyTorch: $KEXUE_BENCH_PYTHON, default Debian's /usr/bin/python3. */
export function benchPython(): string {
  return process.env.KEXUE_BENCH_PYTHON ?? '/usr/bin/python3';
}

/**
 * How PyTorch's OpenMP threads wait for work: 'passive' sets OMP_WAIT_POLICY=PASSIVE (they sleep
 * at once), 'default' leaves it unset (the OpenMP runtime spins a while first).
 */
export type TorchWaitPolicy = 'passive' | 'default';
export const TORCH_WAIT_POLICIES: readonly TorchWaitPolicy[] = ['passive', 'default'];

/** The environment of a torch child: `threads` OpenMP threads and the wait policy, set before torch loads. */
export function torchEnv(threads: number, policy: TorchWaitPolicy, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...env, OMP_NUM_THREADS: String(threads) };
  if (policy === 'passive') e.OMP_WAIT_POLICY = 'PASSIVE';
  else delete e.OMP_WAIT_POLICY;
  return e;
}

interface Reply {
  ok: boolean;
  error?: string;
  ms?: number[];
  torch?: string;
  threads?: number;
}

/** A running torch_bench.py. open() rejects with the reason when PyTorch cannot start. */
export class TorchSide {
  /** torch.__version__ as the child reports it. */
  version = '?';
  readonly policy: TorchWaitPolicy;
  readonly #proc: ChildProcessWithoutNullStreams;
  readonly #rl: Interface;
  readonly #lines: AsyncIterator<string>;
  readonly #stderr: string[] = [];

  private constructor(proc: ChildProcessWithoutNullStreams, policy: TorchWaitPolicy) {
    this.#proc = proc;
    this.policy = policy;
    proc.stderr.on('data', (d: Buffer) => this.#stderr.push(d.toString()));
    this.#rl = createInterface({ input: proc.stdout });
    this.#lines = this.#rl[Symbol.asyncIterator]();
  }

  /** Starts benchPython() with `threads` threads and the wait policy. */
  static async open(threads: number, policy: TorchWaitPolicy, python = benchPython()): Promise<TorchSide> {
    const proc = spawn(python, [TORCH_SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'], env: torchEnv(threads, policy) });
    const side = new TorchSide(proc, policy);
    const failed = new Promise<never>((_, reject) => {
      proc.on('error', (e) => reject(new Error(`cannot start ${python}: ${e.message}`)));
    });
    const hello = await Promise.race([side.#ask({ cmd: 'hello', threads }), failed]);
    if (!hello.ok) throw new Error(`PyTorch: ${hello.error}`);
    side.version = hello.torch ?? '?';
    return side;
  }

  /** The child's process id (its CPU time is read from /proc). */
  get pid(): number {
    return this.#proc.pid ?? -1;
  }

  #tail(): string {
    return this.#stderr.join('').trim().split('\n').slice(-3).join(' | ');
  }

  async #ask(req: Record<string, unknown>): Promise<Reply> {
    this.#proc.stdin.write(`${JSON.stringify(req)}\n`);
    const next = await this.#lines.next();
    if (next.done) throw new Error(`PyTorch exited: ${this.#tail() || 'no output'}`);
    return JSON.parse(next.value) as Reply;
  }

  /** Builds a case's tensors (`args`: what the case needs besides its name); rejects with PyTorch's error message. */
  async setup(name: string, args?: Record<string, unknown>): Promise<void> {
    const r = await this.#ask({ cmd: 'setup', case: name, ...(args ? { args } : {}) });
    if (!r.ok) throw new Error(`PyTorch setup ${name}: ${r.error}`);
  }

  /** Runs the set-up case `iters` times; per-iteration milliseconds. */
  async run(iters: number): Promise<number[]> {
    const r = await this.#ask({ cmd: 'run', iters });
    if (!r.ok || !r.ms) throw new Error(`PyTorch run: ${r.error}`);
    return r.ms;
  }

  close(): void {
    this.#proc.stdin.end(`${JSON.stringify({ cmd: 'quit' })}\n`);
    this.#rl.close();
  }
}
