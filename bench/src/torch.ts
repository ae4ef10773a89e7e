/**
 * The PyTorch side: bench/torch_bench.py as a child process speaking JSON lines, so that kexue and
 * PyTorch run in one benchmark, alternating, on the same machine at the same moment. PyTorch runs
 * in one child per setting (torchSettings: the OpenMP wait policy, and OpenBLAS's kernels), and
 * the fastest is reported.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { envWithoutOpenblasOverrides, hasOpenblasOverrides } from './peaks.js';

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

/**
 * Which kernels OpenBLAS (PyTorch's matrix products) runs: '' the ones the environment's
 * OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE pick, '_openblas_auto' its own choice for this CPU (those
 * two removed).
 */
export type TorchOpenblasChoice = '' | '_openblas_auto';

/** A setting's name; results.json keeps torch_<name>_ms and torch_<name>_samples of each. */
export type TorchSettingName = `${TorchWaitPolicy}${TorchOpenblasChoice}`;

type EnvTransform = (env: NodeJS.ProcessEnv) => NodeJS.ProcessEnv;

/** One way of running PyTorch: its name and how its child's environment differs from this process's. */
export interface TorchSetting {
  name: TorchSettingName;
  env: EnvTransform;
}

const WAIT_POLICY_ENV: Record<TorchWaitPolicy, EnvTransform> = {
  passive: (env) => ({ ...env, OMP_WAIT_POLICY: 'PASSIVE' }),
  default: (env) => {
    const e = { ...env };
    delete e.OMP_WAIT_POLICY;
    return e;
  },
};

const OPENBLAS_ENV: Record<TorchOpenblasChoice, EnvTransform> = { '': (env) => env, _openblas_auto: envWithoutOpenblasOverrides };

/** The setting of a wait policy and an OpenBLAS choice. */
export function torchSetting(policy: TorchWaitPolicy, openblas: TorchOpenblasChoice): TorchSetting {
  return { name: `${policy}${openblas}`, env: (env) => WAIT_POLICY_ENV[policy](OPENBLAS_ENV[openblas](env)) };
}

/**
 * The settings PyTorch runs in under `env`: both wait policies, and both again without the
 * environment's OpenBLAS overrides when it has some (they slow PyTorch's products; kexue's do not
 * run on OpenBLAS, so only PyTorch would pay them).
 */
export function torchSettings(env: NodeJS.ProcessEnv = process.env): TorchSetting[] {
  const openblas: TorchOpenblasChoice[] = hasOpenblasOverrides(env) ? ['', '_openblas_auto'] : [''];
  return openblas.flatMap((o) => (['passive', 'default'] as const).map((p) => torchSetting(p, o)));
}

/** The environment of a torch child: `threads` OpenMP threads and the setting, set before torch loads. */
export function torchEnv(threads: number, setting: TorchSetting, env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...setting.env(env), OMP_NUM_THREADS: String(threads) };
}

interface Reply {
  ok: boolean;
  error?: string;
  ms?: number[];
  torch?: string;
  threads?: number;
  max_abs_diff?: number;
}

/** A running torch_bench.py. open() rejects with the reason when PyTorch cannot start. */
export class TorchSide {
  /** torch.__version__ as the child reports it. */
  version = '?';
  readonly setting: TorchSetting;
  readonly #proc: ChildProcessWithoutNullStreams;
  readonly #rl: Interface;
  readonly #lines: AsyncIterator<string>;
  readonly #stderr: string[] = [];

  private constructor(proc: ChildProcessWithoutNullStreams, setting: TorchSetting) {
    this.#proc = proc;
    this.setting = setting;
    proc.stderr.on('data', (d: Buffer) => this.#stderr.push(d.toString()));
    this.#rl = createInterface({ input: proc.stdout });
    this.#lines = this.#rl[Symbol.asyncIterator]();
  }

  /** Starts benchPython() with `threads` threads in the setting. */
  static async open(threads: number, setting: TorchSetting, python = benchPython()): Promise<TorchSide> {
    const proc = spawn(python, [TORCH_SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'], env: torchEnv(threads, setting) });
    const side = new TorchSide(proc, setting);
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

  /**
   * Builds a case's tensors (`args`: what the case needs besides its name); rejects with PyTorch's
   * error message. Resolves to PyTorch's output against kexue's, max |difference|, for the cases
   * whose args hand kexue's output over (undefined for the others).
   */
  async setup(name: string, args?: Record<string, unknown>): Promise<number | undefined> {
    const r = await this.#ask({ cmd: 'setup', case: name, ...(args ? { args } : {}) });
    if (!r.ok) throw new Error(`PyTorch setup ${name}: ${r.error}`);
    return r.max_abs_diff;
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
