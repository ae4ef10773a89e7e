// A worker thread's first module when kexue runs from its TypeScript sources (a checkout; client.ts
// picks it): a thread does not inherit the hooks the main thread registered with module.register
// (packages/cli/bin/kexue.js registers tsx's loader and the 'source' export condition in-process),
// so this registers the same two in this thread, then loads the worker's main module, entry.ts.
// Flags from the parent's execArgv that load tsx are dropped by client.ts (tsx must be registered
// once per thread); other flags, such as vitest's --conditions, are inherited as they are.
import { register } from 'node:module';

const { register: registerTsx } = await import('tsx/esm/api');
registerTsx();
// registered last, so it runs first: the 'source' condition reaches tsx's and Node's resolvers
register(
  'data:text/javascript,export async function resolve(s, c, next) { return next(s, { ...c, conditions: [...c.conditions, "source"] }); }',
);
await import(new URL('./entry.ts', import.meta.url).href);
