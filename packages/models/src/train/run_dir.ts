/**
 * Run directories: where a training run keeps its resolved config, metrics.jsonl and checkpoints.
 *
 *   RUN/config.json          the resolved config (every key, defaults filled in)
 *   RUN/metrics.jsonl        one JSON object per logging step and per evaluation
 *   RUN/checkpoints.json     which checkpoint is the last and which the best (written atomically)
 *   RUN/checkpoints/step-N/  model.safetensors, optimizer.safetensors, trainer.json, vocab.txt, config.json
 *   RUN/lock                 while a process trains the run: {"pid", "host", "started"}
 *
 * A new run never writes into a directory that already holds anything (but the leftovers of a run
 * that died before its first checkpoint); continuing one is --resume. One process at a time
 * trains a run: it holds the lock for its life.
 */
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';

import { ArgumentError, KexueIOError, io, ioError } from '@kexue/core-cuda';

export const CONFIG_FILE = 'config.json';
export const METRICS_FILE = 'metrics.jsonl';
export const INDEX_FILE = 'checkpoints.json';
export const CHECKPOINTS_DIR = 'checkpoints';
export const LOCK_FILE = 'lock';

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** `root/<task>-YYYYMMDD-HHMMSS` (local time), with `-2`, `-3`, … appended when that name is taken. */
export function timestampedRunDir(root: string, task: string, now = new Date()): string {
  const stamp = `${now.getFullYear()}${pad(now.getMonth() + 1)}${pad(now.getDate())}-${pad(now.getHours())}${pad(now.getMinutes())}${pad(now.getSeconds())}`;
  const base = path.join(root, `${task}-${stamp}`);
  let dir = base;
  for (let i = 2; existsSync(dir); i++) dir = `${base}-${i}`;
  return dir;
}

/** What a run directory that died before its first checkpoint may hold (and a new run may clear). */
const LEFTOVERS = [CONFIG_FILE, METRICS_FILE, LOCK_FILE, CHECKPOINTS_DIR, 'report.html'];
const isLeftover = (name: string) => LEFTOVERS.includes(name) || name.startsWith('events.out.tfevents.');

/**
 * Whether a new run may use `dir`: absent, empty, or the leftovers of a run that died before its
 * first checkpoint (returns true for those; whoever takes it over clears them under the lock).
 * E_ARG when it holds a run (continue it with --resume) or anything else; nothing is written.
 */
export function checkNewRunDir(dir: string): boolean {
  if (!existsSync(dir)) return false;
  if (!statSync(dir).isDirectory()) throw new ArgumentError(`run directory ${dir} exists and is not a directory`);
  // (the lock alone is no run: this run's own, taken before this check, or a dead one's, taken over)
  const entries = readdirSync(dir).filter((e) => e !== LOCK_FILE);
  if (entries.length === 0) return false;
  const checkpoints = path.join(dir, CHECKPOINTS_DIR);
  const abandoned =
    !entries.includes(INDEX_FILE) &&
    entries.every(isLeftover) &&
    (!existsSync(checkpoints) || readdirSync(checkpoints).every((e) => e.startsWith('.tmp-')));
  if (!abandoned) throw new ArgumentError(`run directory ${dir} already exists and is not empty: continue it with --resume ${dir}, or choose another --run-dir`);
  return true;
}

/** Creates the fresh run directory (after checkNewRunDir and under the run's lock), clearing a dead run's leftovers. */
export function createRunDir(dir: string): void {
  const action = `cannot create run directory ${dir}`;
  try {
    for (const e of readdirSync(dir)) if (e !== LOCK_FILE && isLeftover(e)) rmSync(path.join(dir, e), { recursive: true, force: true });
  } catch (err) {
    throw ioError(action, err);
  }
  io.makeDirectory(path.join(dir, CHECKPOINTS_DIR), action);
}

/**
 * Removes what a fresh run wrote when it failed before its first checkpoint: the directory, or
 * (one that existed before, empty or a dead run's) its contents, so that it blocks nothing.
 */
export function removeUnfinishedRun(dir: string, keepDir: boolean): void {
  if (!keepDir) return rmSync(dir, { recursive: true, force: true });
  for (const e of readdirSync(dir)) if (isLeftover(e)) rmSync(path.join(dir, e), { recursive: true, force: true });
}

/** The process that holds a run's lock. */
export interface LockOwner {
  pid: number;
  host: string;
  /** ISO time. */
  started: string;
}

/** A held run lock. */
export interface RunLock {
  /** The dead process whose stale lock was taken over, if any. */
  readonly tookOver: LockOwner | null;
  /** Removes the lock (also done when the process exits). */
  release(): void;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(file: string): LockOwner | null {
  try {
    const o = JSON.parse(readFileSync(file, 'utf8')) as LockOwner;
    return typeof o.pid === 'number' && typeof o.host === 'string' ? o : null;
  } catch {
    return null; // unreadable or half-written: its writer died while writing it
  }
}

/**
 * Takes the exclusive lock of a run directory (creating the directory) for this process: RUN/lock
 * made with O_EXCL. A lock whose process is gone (same host, no such pid, or a file its writer
 * never finished) is taken over; one held by a live process, or by another host (whose processes
 * cannot be checked from here), is E_IO naming the owner and what to do.
 */
export function lockRunDir(dir: string): RunLock {
  const file = path.join(dir, LOCK_FILE);
  const me: LockOwner = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
  let tookOver: LockOwner | null = null;
  io.makeDirectory(dir, `cannot create run directory ${dir}`);
  for (;;) {
    let fd: number;
    try {
      fd = openSync(file, 'wx');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(`cannot lock run directory ${dir}`, err);
      const owner = readOwner(file);
      if (owner && (owner.host !== me.host || alive(owner.pid))) {
        throw new KexueIOError(
          `run directory ${dir} is in use by process ${owner.pid} on ${owner.host} (since ${owner.started}); ` +
            `if that process is no longer running, delete ${file}`,
        );
      }
      tookOver = owner ?? { pid: 0, host: me.host, started: '' };
      rmSync(file, { force: true });
      continue;
    }
    writeSync(fd, JSON.stringify(me));
    closeSync(fd);
    break;
  }
  const release = () => {
    process.off('exit', release);
    if (readOwner(file)?.pid === me.pid) unlinkSync(file);
  };
  process.on('exit', release);
  return { tookOver, release };
}

/** Checks that `dir` looks like a run directory (config.json and checkpoints.json); E_IO otherwise. */
export function assertRunDir(dir: string): void {
  if (!existsSync(dir)) throw new KexueIOError(`run directory ${dir} does not exist`);
  if (!statSync(dir).isDirectory()) throw new KexueIOError(`${dir} is not a run directory: it is a file`);
  for (const f of [CONFIG_FILE, INDEX_FILE]) {
    if (!existsSync(path.join(dir, f))) throw new KexueIOError(`${dir} is not a kexue run directory (no ${f}${f === INDEX_FILE ? ': no checkpoint was written yet' : ''})`);
  }
}
