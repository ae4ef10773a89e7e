/**
 * The PyTorch side: bench/torch_bench.py as a child process speaking JSON lines, so that kexue and
 * PyTorch run in one benchmark, alternating, on the same machine at the same moment.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const TORCH_SCRIPT = fileURLToPath(new URL('../torch_bench.py', import.meta.url));

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
  readonly #proc: ChildProcessWithoutNullStreams;
  readonly #rl: Interface;
  readonly #lines: AsyncIterator<string>;
  readonly #stderr: string[] = [];

  private constructor(proc: ChildProcessWithoutNullStreams) {
    this.#proc = proc;
    proc.stderr.on('data', (d: Buffer) => this.#stderr.push(d.toString()));
    this.#rl = createInterface({ input: proc.stdout });
    this.#lines = this.#rl[Symbol.asyncIterator]();
  }

  /** Starts python (default /usr/bin/python3, or $KEXUE_BENCH_PYTHON) with `threads` threads. */
  static async open(threads: number, python = process.env.KEXUE_BENCH_PYTHON ?? '/usr/bin/python3'): Promise<TorchSide> {
    const proc = spawn(python, [TORCH_SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, OMP_NUM_THREADS: String(threads) } });
    const side = new TorchSide(proc);
    const failed = new Promise<never>((_, reject) => {
      proc.on('error', (e) => reject(new Error(`cannot start ${python}: ${e.message}`)));
    });
    const hello = await Promise.race([side.#ask({ cmd: 'hello', threads }), failed]);
    if (!hello.ok) throw new Error(`PyTorch: ${hello.error}`);
    side.version = hello.torch ?? '?';
    return side;
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

  /** Builds a case's tensors; rejects with PyTorch's error message. */
  async setup(name: string): Promise<void> {
    const r = await this.#ask({ cmd: 'setup', case: name });
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
