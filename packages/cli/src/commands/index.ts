/**
 * Every `kexue` command, in the order `kexue --help` lists them. A new command is a module in
 * this folder exporting a `Command` (see ../framework/command.ts) and one line here.
 */
import type { Command } from '../framework/command.js';
import { info } from './info.js';
import { tokenize } from './tokenize.js';
import { train } from './train.js';
import { evaluate } from './eval.js';
import { predict } from './predict.js';
import { bench } from './bench.js';

export const commands: readonly Command[] = [tokenize, info, train, evaluate, predict, bench];
