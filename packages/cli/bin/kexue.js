#!/usr/bin/env node
// The `kexue` command. In a checkout with sources (src/ and tsx present) it runs the TypeScript
// sources through tsx with the 'source' export condition, so no build is needed and nothing can
// be stale; an installed package (no src/) runs the compiled dist/.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const source = here('../src/main.ts');

function tsxLoader() {
  try {
    return createRequire(import.meta.url).resolve('tsx');
  } catch {
    return undefined;
  }
}

const loader = existsSync(source) && !process.env.KEXUE_CLI_DIST ? tsxLoader() : undefined;
if (loader && !process.execArgv.includes('--conditions=source')) {
  // Re-run under tsx with the 'source' condition (workspace packages resolve to their src/).
  const entry = here('./kexue.js');
  const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', entry, ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  if (r.error) {
    process.stderr.write(`kexue: could not start: ${r.error.message}\n`);
    process.exit(1);
  }
  process.exit(r.status ?? 1);
} else {
  const { main } = await import(loader ? '../src/main.ts' : '../dist/main.js');
  await main();
}
