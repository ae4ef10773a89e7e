// A worker thread of concurrency.test.ts: its own copy of kexue (the TypeScript sources through
// tsx, registered in this thread) runs the cases `rounds` times and posts the digests.
import { parentPort, workerData } from 'node:worker_threads';

const { register } = await import('tsx/esm/api');
register();
const { runRounds } = await import(new URL('./concurrency_cases.ts', import.meta.url).href);
parentPort.postMessage({ ready: true });
// wait for the go, so that every thread starts its rounds together
await new Promise((resolve) => parentPort.once('message', resolve));
parentPort.postMessage(runRounds(workerData.rounds));
