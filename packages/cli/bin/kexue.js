#!/usr/bin/env node
// The `kexue` command, run in this process: a signal sent to it reaches the training itself (no
// child process to orphan). In a checkout (src/ and tsx present) it runs the TypeScript sources,
// with tsx's loader and a hook adding the 'source' export condition registered in this process,
// so no build is needed and nothing can be stale; an installed package (no src/, and no tsx: a dev
// dependency) runs the compiled dist/. KEXUE_CLI_DIST=1 forces dist/ in a checkout.
import { existsSync } from 'node:fs';
import { register } from 'node:module';
import { fileURLToPath } from 'node:url';

/** tsx's in-process loader API, when tsx is installed (a checkout). */
async function tsx() {
  try {
    return await import('tsx/esm/api');
  } catch {
    return undefined;
  }
}

const fromSource = existsSync(fileURLToPath(new URL('../src/main.ts', import.meta.url))) && !process.env.KEXUE_CLI_DIST;
const loader = fromSource ? await tsx() : undefined;
if (loader) {
  loader.register();
  // registered last, so it runs first: the 'source' condition reaches tsx's and Node's resolvers
  register('./source-condition.mjs', import.meta.url);
}
const { main } = await import(loader ? '../src/main.ts' : '../dist/main.js');
await main();
