#!/usr/bin/env node
// The `kexue` command. In a checkout with sources (src/ and tsx present) it runs the TypeScript
// sources through tsx with the 'source' export condition, so no build is needed and nothing can
// be stale; an installed package (no src/, and no tsx: a dev dependency) runs the compiled dist/.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const source = here('../src/main.ts');

// tsx's ESM entry as a file URL, resolved from this package (not from the working directory, so
// the command works wherever it is run).
function tsxLoader() {
  try {
    return import.meta.resolve('tsx');
  } catch {
    return undefined;
  }
}

const loader = existsSync(source) && !process.env.KEXUE_CLI_DIST ? tsxLoader() : undefined;
if (loader && !process.execArgv.includes('--conditions=source')) {
  // Re-run under tsx with the 'source' condition (workspace packages resolve to their src/).
  const entry = here('./kexue.js');
  const r = spawnSync(process.execPath, ['--conditions=source', '--import', loader, entry, ...process.argv.slice(2)], {
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
