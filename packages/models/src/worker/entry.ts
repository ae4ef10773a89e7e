/**
 * A worker thread's main module (see client.ts): makes the service from workerData's factory, then
 * answers calls one at a time, in the order they came. Calls queue here while one runs (a call's
 * work is synchronous native ops, so the thread does nothing else meanwhile). The queue is read
 * between calls, so a `close` that arrives behind queued calls drops them (the main thread has
 * already rejected them), disposes the service and ends the thread: its tensors are freed before
 * it exits, which a terminate() from outside would not do (the addon's handle table is the
 * process's, and outlives the thread).
 */
import { parentPort, workerData } from 'node:worker_threads';

import { ArgumentError } from '@kexue/core-cuda';

import { sendableError } from './errors.js';
import { Transferring, type FromWorker, type ToWorker, type WorkerInit } from './protocol.js';

type Service = Record<string, unknown> & { dispose?: () => void };

const port = parentPort;
if (!port) throw new Error('worker/entry is the main module of a worker thread');
const init = workerData as WorkerInit;
const queue: Extract<ToWorker, { type: 'call' }>[] = [];
let service: Service | null = null;
let closing = false;
let scheduled = false;

const send = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

port.on('message', (m: ToWorker) => {
  if (m.type === 'close') closing = true;
  else queue.push(m);
  schedule();
});

function schedule(): void {
  // setImmediate runs after the pending messages are delivered, so a close is seen before the next call
  if (service && !scheduled) {
    scheduled = true;
    setImmediate(() => void next());
  }
}

async function next(): Promise<void> {
  scheduled = false;
  if (closing) {
    queue.length = 0;
    try {
      service?.dispose?.();
    } finally {
      process.exit(0);
    }
  }
  const call = queue.shift();
  if (!call) return;
  try {
    const method = service![call.method];
    if (typeof method !== 'function') throw new ArgumentError(`${init.what} has no method '${call.method}'`);
    const result: unknown = await (method as (...a: unknown[]) => unknown).apply(service, call.args);
    if (result instanceof Transferring) send({ type: 'reply', id: call.id, ok: true, value: result.value }, result.transfer);
    else send({ type: 'reply', id: call.id, ok: true, value: result });
  } catch (err) {
    send({ type: 'reply', id: call.id, ok: false, error: sendableError(err) });
  }
  schedule();
}

try {
  const module = (await import(init.factory.url)) as Record<string, unknown>;
  const make = module[init.factory.name];
  if (typeof make !== 'function') throw new ArgumentError(`${init.factory.url} exports no function '${init.factory.name}'`);
  service = (await (make as (options: unknown) => unknown)(init.options)) as Service;
  if (typeof service !== 'object' || service === null) throw new ArgumentError(`${init.factory.name} did not return a service object`);
} catch (err) {
  send({ type: 'failed', error: sendableError(err) });
  process.exit(1);
}
send({ type: 'ready' });
schedule();
