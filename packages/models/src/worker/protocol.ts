/** The messages between a ServiceWorker (client.ts) and its worker thread (entry.ts). */
import type { SentError } from './errors.js';

/**
 * Where a worker finds the function that makes its service: a module's URL and the name of the
 * function it exports. The function is called with the init options and returns (or resolves to)
 * the service: an object whose methods answer calls by name, and an optional dispose().
 */
export interface ServiceFactory {
  url: string;
  name: string;
}

/** The worker's workerData. */
export interface WorkerInit {
  factory: ServiceFactory;
  options: unknown;
  /** The service's name in messages ('the NER predictor'). */
  what: string;
}

/** Main thread → worker. */
export type ToWorker = { type: 'call'; id: number; method: string; args: unknown[] } | { type: 'close' };

/** Worker → main thread. */
export type FromWorker =
  | { type: 'ready' }
  | { type: 'failed'; error: SentError }
  | { type: 'reply'; id: number; ok: true; value: unknown }
  | { type: 'reply'; id: number; ok: false; error: SentError };

/** A service method's result with the buffers postMessage should transfer rather than copy. */
export class Transferring<T = unknown> {
  constructor(
    readonly value: T,
    readonly transfer: ArrayBuffer[],
  ) {}
}
