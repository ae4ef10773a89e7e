/**
 * Every `kexue` command, in the order `kexue --help` lists them. A new command is a module in
 * this folder exporting a `Command` (see ../framework/command.ts) and one line here; a new task
 * needs nothing here (train, eval, predict and sample come from @kexue/models' task registry).
 */
import type { Command } from '../framework/command.js';
import { info } from './info.js';
import { tokenize } from './tokenize.js';
import { taskGroup } from './tasks.js';
import { bench } from './bench.js';
import { report } from './report.js';
import { generateGroup } from './generate.js';
import { jl } from './jl.js';

export const commands: readonly Command[] = [tokenize, info, taskGroup('train'), taskGroup('eval'), taskGroup('predict'), taskGroup('sample'), generateGroup, jl, report, bench];
