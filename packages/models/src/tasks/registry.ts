/**
 * The training tasks, by name: what `kexue train|eval|predict <task>` offers. A new task is one
 * module in this folder (its config keys, setup, evaluation and commands through defineTask) and
 * one line here; the CLI derives its commands, keys and help from this list. An evaluation of
 * models no task trains for (STS of sentence vectors) is one EvaluationCommand in EVALUATIONS.
 */
import { RequestError } from './config.js';
import { mlmTask } from './mlm.js';
import { nerTask } from './ner.js';
import { pegasusTask } from './pegasus.js';
import { summarizeTask } from './summarize.js';
import { vaeTask } from './vae.js';
import type { EvaluationCommand, Task } from './task.js';
import { stsEvaluation } from '../sentence/sts_command.js';
import { suggest } from '../suggest.js';

export const TASKS: readonly Task[] = [nerTask, mlmTask, summarizeTask, pegasusTask, vaeTask];

/** The evaluations that belong to no task (`kexue eval <name> MODEL`), offered beside the tasks' own. */
export const EVALUATIONS: readonly EvaluationCommand[] = [stsEvaluation];

/** The task of a name; RequestError (with a suggestion) for an unknown one. */
export function getTask(name: string): Task {
  const task = TASKS.find((t) => t.name === name);
  if (task) return task;
  const hint = suggest(name, TASKS.map((t) => t.name));
  throw new RequestError(`unknown task '${name}'${hint ? ` (did you mean '${hint}'?)` : ''} (tasks: ${TASKS.map((t) => t.name).join(', ')})`);
}
