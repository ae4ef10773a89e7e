/**
 * @kexue/bench: kexue against PyTorch on the same machine, in one run (bench/README in
 * docs/performance.md). `runBench(options)` is what `pnpm bench` and `kexue bench` call.
 */
export { CASES, findCase, BERT_SMALL, CLUENER, type BenchCase, type CaseInstance } from './cases.js';
export { runBench, type BenchOptions, type BenchReport, type CaseResult } from './run.js';
export { measurePeaks, peaksProgram, envWithoutOpenblasOverrides, type Peaks } from './peaks.js';
export { toMarkdown, readReport, mergeReports, writeReport } from './report.js';
export { median } from './stats.js';
export { DEFAULT_OUT, main, parseArgs, runCli, type CliArgs } from './main.js';
