/**
 * @kexue/bench: kexue against PyTorch on the same machine, in one run (bench/README in
 * docs/performance.md). `runBench(options)` is what `pnpm bench` and `kexue bench` call.
 */
export { CASES, findCase, isMeasured, BERT_SMALL, CLUENER, type BenchCase, type CaseInstance, type TimedCase, type MeasuredCase } from './cases.js';
export { runBench, type BenchOptions } from './run.js';
export type { BenchReport, CaseResult, MachineInfo, NeighbourResult, FootprintResult } from './result.js';
export { measurePeaks, peaksProgram, envWithoutOpenblasOverrides, type Peaks } from './peaks.js';
export { toMarkdown, readReport, mergeReports, writeReport } from './report.js';
export { median } from './stats.js';
export { DEFAULT_OUT, main, parseArgs, runCli, type CliArgs } from './main.js';
