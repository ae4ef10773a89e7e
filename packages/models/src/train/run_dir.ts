/**
 * Run directories: where a training run keeps its resolved config, metrics.jsonl and checkpoints.
 *
 *   RUN/config.json          the resolved config (every key, defaults filled in)
 *   RUN/metrics.jsonl        one JSON object per logging step and per evaluation
 *   RUN/checkpoints.json     which checkpoint is the last and which the best (written atomically)
 *   RUN/checkpoints/step-N/  model.safetensors, optimizer.safetensors, trainer.json, vocab.txt, config.json
 *
 * A new run never writes into a directory that already holds anything; continuing one is --resume.
 */
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

import { ArgumentError, KexueIOError } from '@kexue/core-cuda';

export const CONFIG_FILE = 'config.json';
export const METRICS_FILE = 'metrics.jsonl';
export const INDEX_FILE = 'checkpoints.json';
export const CHECKPOINTS_DIR = 'checkpoints';

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** `root/<task>-YYYYMMDD-HHMMSS` (local time), with `-2`, `-3`, … appended when that name is taken. */
export function timestampedRunDir(root: string, task: string, now = new Date()): string {
  const stamp = `${now.getFullYear()}${pad(now.getMonth() + 1)}${pad(now.getDate())}-${pad(now.getHours())}${pad(now.getMinutes())}${pad(now.getSeconds())}`;
  const base = path.join(root, `${task}-${stamp}`);
  let dir = base;
  for (let i = 2; existsSync(dir); i++) dir = `${base}-${i}`;
  return dir;
}

/**
 * Creates a fresh run directory. E_ARG when `dir` exists and is not an empty directory (a run is
 * continued with --resume, never overwritten); E_IO when it cannot be created.
 */
export function createRunDir(dir: string): void {
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new ArgumentError(`run directory ${dir} exists and is not a directory`);
    if (readdirSync(dir).length > 0) {
      throw new ArgumentError(`run directory ${dir} already exists and is not empty: continue it with --resume ${dir}, or choose another --run-dir`);
    }
  }
  try {
    mkdirSync(path.join(dir, CHECKPOINTS_DIR), { recursive: true });
  } catch (err) {
    throw new KexueIOError(`cannot create run directory ${dir}: ${(err as Error).message}`, { cause: err });
  }
}

/** Checks that `dir` looks like a run directory (config.json and checkpoints.json); E_IO otherwise. */
export function assertRunDir(dir: string): void {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new KexueIOError(`run directory ${dir} does not exist`);
  for (const f of [CONFIG_FILE, INDEX_FILE]) {
    if (!existsSync(path.join(dir, f))) throw new KexueIOError(`${dir} is not a kexue run directory (no ${f}${f === INDEX_FILE ? ': no checkpoint was written yet' : ''})`);
  }
}
