/**
 * A service in a worker thread, seen from the main thread: what NerPredictor.predictAsync and
 * WorkerModule.forwardAsync run on, so that inference leaves the event loop free.
 *
 * - The worker starts on the first call (or `start()`), once: it imports the factory's module and
 *   calls it with the init options (made when the worker starts, so a service can copy its weights
 *   then), and answers calls by id. Calls queue in the worker and run one at a time, in order.
 * - A call's arguments and result cross by structured clone (tensors as their bytes: tensors.ts).
 * - An error in the worker rejects the call that met it with the KexueError of the same code
 *   (errors.ts). A worker that fails to start rejects every waiting call and is dropped; so is one
 *   that dies (its 'error' or 'exit'), with E_INTERNAL. The next call starts a new one.
 * - `close()` rejects the calls not yet answered (E_DISPOSED), has the worker finish the one it is
 *   running (native ops cannot be interrupted; a terminate() would wait for them too), drop the
 *   rest and dispose its service, and resolves when the thread has ended. A later call starts a
 *   new worker.
 * - An idle worker does not keep the process alive (it is unref'd once started while no call
 *   waits), so a program that forgets close() still exits.
 *
 * The worker loads the same code the main thread runs: dist/ in an installed package; in a checkout
 * (this module is a .ts file: vitest, tsx, the CLI's in-process registration) it starts at
 * source.mjs, which registers tsx and the 'source' condition in the new thread.
 */
import { Worker } from 'node:worker_threads';

import { ArgumentError, DisposedError, KexueError } from '@kexue/core-cuda';

import { rebuildError } from './errors.js';
import type { FromWorker, ServiceFactory, ToWorker, WorkerInit } from './protocol.js';

export type { ServiceFactory } from './protocol.js';

/** Whether this package runs from its TypeScript sources (a checkout) rather than dist/. */
const FROM_SOURCE = import.meta.url.endsWith('.ts');

/**
 * The URL of module `stem` next to the module at `here` (its import.meta.url), in the form this
 * package runs: `stem.ts` in a checkout, `stem.js` in dist/.
 */
export function siblingModule(here: string, stem: string): string {
  return new URL(`./${stem}${here.endsWith('.ts') ? '.ts' : '.js'}`, here).href;
}

/** Flags of the parent that load tsx: a thread must register it once, and source.mjs does. */
function inheritedExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  const tsx = (v: string) => /(^|[/\\])tsx([/\\]|$)/.test(v) || /^tsx(\/|$)/.test(v);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^--(require|import|loader|experimental-loader)(?:=(.*))?$/.exec(a) ?? (a === '-r' ? [a, 'require', undefined] : null);
    if (m) {
      const value = m[2] ?? argv[i + 1] ?? '';
      if (m[2] === undefined) i++;
      if (tsx(value)) continue;
      out.push(...(m[2] === undefined ? [a, value] : [a]));
      continue;
    }
    out.push(a);
  }
  return out;
}

interface Waiting {
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export interface ServiceWorkerOptions {
  /** The service's name in messages ('the NER predictor'). */
  what: string;
  factory: ServiceFactory;
  /** The factory's options and the buffers to transfer with them, made when a worker starts. */
  init: () => { options: unknown; transfer?: ArrayBuffer[] };
}

export class ServiceWorker {
  readonly #options: ServiceWorkerOptions;
  #worker: Worker | null = null;
  /** Resolves when the current worker's service is made; rejects when that failed. */
  #ready: Promise<void> | null = null;
  readonly #waiting = new Map<number, Waiting>();
  #nextId = 1;
  #closing: Promise<void> | null = null;
  /** Whether the current worker's service is ready. */
  #started = false;

  constructor(options: ServiceWorkerOptions) {
    this.#options = options;
  }

  /** Whether a worker is running (or starting). */
  get running(): boolean {
    return this.#worker !== null;
  }

  /** Starts the worker if none runs; resolves once its service is ready (rejects if it failed to start). */
  start(): Promise<void> {
    if (this.#closing) return this.#closing.then(() => this.start());
    if (this.#ready) return this.#ready;
    const { options, transfer = [] } = this.#options.init();
    const init: WorkerInit = { factory: this.#options.factory, options, what: this.#options.what };
    const entry = FROM_SOURCE ? new URL('./source.mjs', import.meta.url) : new URL('./entry.js', import.meta.url);
    const worker = new Worker(entry, { workerData: init, transferList: transfer, execArgv: FROM_SOURCE ? inheritedExecArgv() : undefined });
    this.#worker = worker;
    this.#started = false; // referenced (keeps the process alive) until ready and whenever a call waits
    this.#ready = new Promise<void>((resolve, reject) => {
      const current = () => this.#worker === worker;
      worker.on('message', (m: FromWorker) => {
        if (!current()) return;
        if (m.type === 'ready') {
          this.#started = true;
          this.#unrefIfIdle();
          resolve();
        } else if (m.type === 'failed') {
          const err = rebuildError(m.error);
          reject(err);
          this.#drop(worker, err);
        } else this.#settle(m);
      });
      worker.on('error', (e: unknown) => {
        if (!current()) return;
        // an error nothing in the worker caught: a KexueError keeps its code (Node clones its own properties)
        const code = (e as { code?: unknown })?.code;
        const err =
          typeof code === 'string' && code.startsWith('E_')
            ? rebuildError({ code, name: (e as Error).name, message: (e as Error).message, stack: (e as Error).stack })
            : new KexueError('E_INTERNAL', `${this.#options.what}'s worker thread failed: ${(e as Error)?.message ?? String(e)}`);
        reject(err);
        this.#drop(worker, err);
      });
      worker.on('exit', (code) => {
        if (!current()) return;
        const err = new KexueError('E_INTERNAL', `${this.#options.what}'s worker thread stopped (exit code ${code})`);
        reject(err);
        this.#drop(worker, err);
      });
    });
    this.#ready.catch(() => {}); // a start's failure is the waiting calls' (and start()'s caller's) to see
    return this.#ready;
  }

  /** Calls `method` of the worker's service with `args` (structured-cloned; `transfer`: buffers to move). */
  async call<T>(method: string, args: unknown[], transfer: ArrayBuffer[] = []): Promise<T> {
    if (this.#closing) await this.#closing;
    const ready = this.start();
    const worker = this.#worker!;
    const id = this.#nextId++;
    const result = new Promise<unknown>((resolve, reject) => this.#waiting.set(id, { resolve, reject }));
    worker.ref();
    try {
      worker.postMessage({ type: 'call', id, method, args } satisfies ToWorker, transfer);
    } catch (err) {
      this.#waiting.delete(id);
      this.#unrefIfIdle();
      throw new ArgumentError(`${this.#options.what}: cannot send the arguments of ${method} to its worker thread: ${(err as Error).message}`);
    }
    await ready.catch(() => {}); // a failed start rejected this call already
    return (await result) as T;
  }

  /**
   * Stops the worker: calls not yet answered are rejected with E_DISPOSED, the worker finishes the
   * one it is running, disposes its service and the promise resolves when the thread has ended.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    const worker = this.#worker;
    if (!worker) return Promise.resolve();
    this.#rejectAll(new DisposedError(`${this.#options.what} was closed before this call ran`));
    this.#closing = new Promise<void>((resolve) => {
      worker.once('exit', () => resolve());
      worker.ref();
      worker.postMessage({ type: 'close' } satisfies ToWorker);
    }).finally(() => {
      if (this.#worker === worker) {
        this.#worker = null;
        this.#ready = null;
      }
      this.#closing = null;
    });
    return this.#closing;
  }

  #settle(m: Extract<FromWorker, { type: 'reply' }>): void {
    const w = this.#waiting.get(m.id);
    if (!w) return; // rejected by close()
    this.#waiting.delete(m.id);
    if (m.ok) w.resolve(m.value);
    else w.reject(rebuildError(m.error));
    this.#unrefIfIdle();
  }

  #unrefIfIdle(): void {
    if (this.#started && this.#waiting.size === 0 && !this.#closing) this.#worker?.unref();
  }

  #rejectAll(err: Error): void {
    const waiting = [...this.#waiting.values()];
    this.#waiting.clear();
    for (const w of waiting) w.reject(err);
  }

  /** Forgets a worker that failed or died: its waiting calls get `err`, the next call starts anew. */
  #drop(worker: Worker, err: Error): void {
    if (this.#worker !== worker) return;
    this.#worker = null;
    this.#ready = null;
    this.#rejectAll(err);
    void worker.terminate();
  }
}
