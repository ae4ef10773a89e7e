/**
 * `pnpm bench [--case NAME|PREFIX]... [--threads N] [--rounds N] [--out FILE] [--no-torch] [--no-peaks] [--list]`
 * Writes bench/results.json and bench/results.md (a run of some cases updates those cases only).
 */
import { fileURLToPath } from 'node:url';

import { ArgumentError } from '@kexue/core-cuda';

import { CASES } from './cases.js';
import { mergeReports, readReport, toMarkdown, writeReport } from './report.js';
import { runBench, type BenchOptions } from './run.js';

export interface CliArgs extends BenchOptions {
  out: string;
  list: boolean;
}

/** bench/results.json of this repository. */
export const DEFAULT_OUT = fileURLToPath(new URL('../results.json', import.meta.url));

function positiveInt(v: string | undefined, flag: string): number {
  const x = Number(v);
  if (!Number.isInteger(x) || x <= 0) throw new ArgumentError(`bench: ${flag} needs a positive integer, got ${String(v)}`);
  return x;
}

/** Parses the command line (without node and the script). */
export function parseArgs(argv: string[]): CliArgs {
  const a: CliArgs = { out: DEFAULT_OUT, list: false, cases: [] };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i]!;
    const [flag, inline] = f.includes('=') ? [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)] : [f, undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--case':
        a.cases!.push(...String(value()).split(','));
        break;
      case '--threads':
        a.threads = positiveInt(value(), flag);
        break;
      case '--rounds':
        a.rounds = positiveInt(value(), flag);
        break;
      case '--out':
        a.out = String(value());
        break;
      case '--no-torch':
        a.torch = false;
        break;
      case '--no-peaks':
        a.peaks = false;
        break;
      case '--list':
        a.list = true;
        break;
      default:
        throw new ArgumentError(`bench: unknown argument '${f}' (--case NAME, --threads N, --rounds N, --out FILE, --no-torch, --no-peaks, --list)`);
    }
  }
  return a;
}

/** The command: returns the exit code. */
export async function main(argv: string[], log: (s: string) => void = (s) => console.log(s)): Promise<number> {
  return runCli(parseArgs(argv), log);
}

/** Runs parsed arguments (what `pnpm bench` and `kexue bench` share): returns the exit code. */
export async function runCli(args: CliArgs, log: (s: string) => void): Promise<number> {
  if (args.list) {
    for (const c of CASES) log(`${c.name.padEnd(24)} ${c.what}`);
    return 0;
  }
  const fresh = await runBench({ ...args, log });
  const report = mergeReports(readReport(args.out), fresh, CASES.map((c) => c.name));
  const md = args.out.replace(/\.json$/, '') + '.md';
  writeReport(args.out, md, report);
  log('');
  log(toMarkdown(report));
  log(`wrote ${args.out} and ${md}`);
  return fresh.results.some((r) => r.kexue_ms === null) ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      console.error(`bench: ${e.message}`);
      process.exit(2);
    },
  );
}
