/**
 * A module's forward in a worker thread (forwardAsync), so that the calling thread's event loop
 * stays free while it runs.
 *
 * A worker thread cannot use the caller's module (its tensors are the caller thread's), so it
 * builds its own: the caller names a factory, a function exported by a module file (its URL, as
 * `import.meta.url` gives it, and the export's name) that the worker imports and calls with `args`
 * to make a module of the same architecture; the worker then loads a copy of the caller's
 * parameters into it (strictly: E_FORMAT when the factory's module does not fit them), moves it to
 * the caller module's device and puts it in eval mode. The copy is taken when the worker starts
 * (the first forwardAsync, or ready()); the worker holds it until close().
 *
 * forwardAsync(...args) runs `forward(...args)` there: tensors among the arguments (also inside
 * arrays and plain objects) are copied in, the result's tensors are copied back and made on the
 * caller module's device, the caller's to dispose. Other arguments must be what postMessage can
 * clone. Calls queue and run one at a time, in order; an error rejects its call with the KexueError
 * of the same code. No gradients: the worker runs inference only.
 */
import { ArgumentError, tidy } from '@kexue/core-cuda';

import { ServiceWorker, siblingModule } from '../worker/client.js';
import { Transferring } from '../worker/protocol.js';
import { loadPackedWeights, packValue, unpackValue, type PackedTensor } from '../worker/tensors.js';
import type { Module } from './module.js';

/** A function exported by a module file that makes the module a worker runs. */
export interface ModuleFactory {
  /** The module file's URL (its `import.meta.url`, or a file: URL), or an absolute path. */
  url: string | URL;
  /** The name of the exported function: `(args) => Module` (or a Promise of one). */
  name: string;
  /** Passed to the function (anything postMessage can clone). */
  args?: unknown;
}

/** What the worker gets (moduleService). */
interface ModuleWorkerInit {
  factory: { url: string; name: string; args: unknown };
  weights: Record<string, PackedTensor>;
  device: string;
}

type Forwardable = Module & { forward: (...args: unknown[]) => unknown };

function factoryUrl(url: string | URL): string {
  if (url instanceof URL) return url.href;
  if (url.startsWith('/')) return new URL(`file://${url}`).href;
  try {
    return new URL(url).href;
  } catch {
    throw new ArgumentError(`ModuleFactory.url must be a URL (import.meta.url) or an absolute path, got ${url}`);
  }
}

export class WorkerModule<Out = unknown> {
  readonly #service: ServiceWorker;
  readonly #device: string;

  /**
   * A worker-backed forward for `module`, made by `factory` in the worker (see above). Nothing
   * starts until the first forwardAsync or ready().
   */
  constructor(module: Module, factory: ModuleFactory) {
    if (typeof factory?.name !== 'string' || factory.name === '') throw new ArgumentError('ModuleFactory.name must name an exported function');
    const url = factoryUrl(factory.url);
    this.#device = module.device;
    this.#service = new ServiceWorker({
      what: `the ${module.constructor.name} worker`,
      factory: { url: siblingModule(import.meta.url, 'worker_module'), name: 'moduleService' },
      init: () => {
        const weights = packValue(module.stateDict(), 'parameters');
        const options: ModuleWorkerInit = {
          factory: { url, name: factory.name, args: factory.args },
          weights: weights.value as Record<string, PackedTensor>,
          device: module.device,
        };
        return { options, transfer: weights.transfer };
      },
    });
  }

  /** The module's forward(...args), run in the worker; resolves with its result, tensors made on the module's device. */
  async forwardAsync(...args: unknown[]): Promise<Out> {
    const packed = packValue(args, 'argument');
    const value = await this.#service.call<unknown>('forward', [packed.value], packed.transfer);
    return unpackValue(value, this.#device) as Out;
  }

  /** Starts the worker now rather than at the first call; resolves once it has built the module. */
  async ready(): Promise<void> {
    return this.#service.start();
  }

  /**
   * Stops the worker and frees its module: calls not yet answered reject with E_DISPOSED; resolves
   * once the worker has finished the call it was running and ended. A later call starts a new
   * worker with a fresh copy of the parameters.
   */
  close(): Promise<void> {
    return this.#service.close();
  }
}

/** @internal The worker side (worker/entry.ts calls it in the worker thread). */
export async function moduleService(init: ModuleWorkerInit) {
  const exports = (await import(init.factory.url)) as Record<string, unknown>;
  const make = exports[init.factory.name];
  if (typeof make !== 'function') throw new ArgumentError(`${init.factory.url} exports no function '${init.factory.name}'`);
  const module = (await (make as (args: unknown) => unknown)(init.factory.args)) as Forwardable;
  if (typeof module?.forward !== 'function' || typeof module.loadStateDict !== 'function') {
    throw new ArgumentError(`${init.factory.name} (${init.factory.url}) did not return a Module with a forward method`);
  }
  loadPackedWeights(module, init.weights, init.device);
  return {
    forward(args: unknown[]) {
      const out = tidy(() => packValue(module.forward(...(unpackValue(args, init.device) as unknown[])), 'result'));
      return new Transferring(out.value, out.transfer);
    },
    dispose: () => module.dispose(),
  };
}
