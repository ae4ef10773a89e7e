/** @kexue/cli: the `kexue` command, and its framework for adding commands. */
export { main, processContext } from './main.js';
export { commands } from './commands/index.js';
export { taskGroup } from './commands/tasks.js';
export { runCli, type CliSpec } from './framework/run.js';
export { parseArgs } from './framework/args.js';
export { commandHelp, globalHelp, groupHelp, usageLine } from './framework/help.js';
export { UsageError, EXIT_OK, EXIT_FAILURE, EXIT_USAGE } from './framework/errors.js';
export type { Command, CommandContext, CommandGroup, LeafCommand, OptionSpec, OptionType, ParsedArgs, PositionalSpec } from './framework/command.js';
export { isGroup } from './framework/command.js';
export { progressRenderer, clock, type RendererOptions } from './progress.js';
export { version } from './version.js';
export { buildCharts, loadRuns, runNames, summarize, type Chart, type ReportRun, type RunSummary } from './report/data.js';
export { reportHtml, uplotAssets, type UplotAssets } from './report/html.js';
