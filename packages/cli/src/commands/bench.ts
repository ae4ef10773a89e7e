/**
 * `kexue bench`: the benchmarks of @kexue/bench (kexue against PyTorch in one run), as `pnpm bench`.
 * @kexue/bench is an optional part: it ships with a kexue checkout, not with the published
 * packages, so it is imported only when the command runs and its absence is an E_LOAD message.
 */
import type { Command } from '../framework/command.js';
import { UsageError } from '../framework/errors.js';

type BenchModule = typeof import('@kexue/bench');

/** What `kexue bench` says where @kexue/bench is not installed. */
const BENCH_MISSING =
  'kexue bench needs @kexue/bench, which is not installed here: the benchmarks ship with a kexue checkout, ' +
  'not with the installed packages. In a checkout of the kexue repository run `pnpm bench` (or `pnpm kexue bench`).';

/** @kexue/bench, or undefined where that package itself cannot be found (an error inside it is rethrown). */
async function loadBench(): Promise<BenchModule | undefined> {
  try {
    return await import('@kexue/bench');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e?.code === 'ERR_MODULE_NOT_FOUND' && /['"]@kexue\/bench['"]/.test(e.message)) return undefined;
    throw err;
  }
}

export const bench: Command = {
  name: 'bench',
  summary: 'Time kexue against PyTorch on this machine; write results.json and a Markdown table.',
  details:
    'Each case runs for kexue and for PyTorch (python3-torch, same threads and shapes) alternating, and reports the\n' +
    'medians and their ratio. A run of some cases updates those rows of the results file. docs/performance.md has the cases.\n' +
    'Needs @kexue/bench, which ships with a kexue checkout (pnpm bench), not with the installed packages.',
  options: [
    { name: 'case', type: 'string', repeatable: true, valueName: 'NAME', description: 'run this case (names: --list; default: all)' },
    { name: 'threads', type: 'integer', valueName: 'N', description: 'CPU threads for both sides (default: all cores)' },
    { name: 'rounds', type: 'integer', valueName: 'N', description: 'timed rounds per case' },
    { name: 'out', type: 'string', valueName: 'FILE', description: 'results file (default: bench/results.json of the repository); the table goes beside it as .md' },
    { name: 'no-torch', type: 'boolean', description: 'time kexue only' },
    { name: 'no-peaks', type: 'boolean', description: 'skip measuring the sgemm and memory-copy peaks' },
    { name: 'list', type: 'boolean', description: 'list the cases and exit' },
  ],
  positionals: [],
  async run(args, ctx) {
    const b = await loadBench();
    if (!b) {
      const { LoadError } = await import('@kexue/core-cuda');
      throw new LoadError(BENCH_MISSING);
    }
    const o = args.options;
    const positive = (v: unknown, flag: string): number | undefined => {
      if (v === undefined) return undefined;
      if (typeof v !== 'number' || v <= 0) throw new UsageError(`--${flag} needs a positive integer, got ${String(v)}`, 'bench');
      return v;
    };
    return b.runCli(
      {
        cases: ((o.case as string[] | undefined) ?? []).flatMap((c) => c.split(',')),
        threads: positive(o.threads, 'threads'),
        rounds: positive(o.rounds, 'rounds'),
        out: typeof o.out === 'string' ? o.out : b.DEFAULT_OUT,
        torch: !o.noTorch,
        peaks: !o.noPeaks,
        list: o.list === true,
      },
      (s) => ctx.stdout(s + '\n'),
    );
  },
};
