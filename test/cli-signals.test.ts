/**
 * Signals and the real `kexue` process: Ctrl-C (SIGINT) stops a training after the current update
 * with a checkpoint and says how to resume; SIGTERM does the same; `kill -9` of the kexue pid
 * leaves no process of the run behind (the training runs in that process), and the run resumes
 * from its last checkpoint, taking over the lock the dead process left.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(root, 'packages/cli/bin/kexue.js');
const env = { ...process.env, KEXUE_NUM_THREADS: '1', KEXUE_PROGRESS: 'lines' };
const TINY = ['model.hidden=32', 'model.layers=1', 'model.heads=2', 'model.intermediate=64', 'head.size=16', 'data.max_length=32', 'data.dev=', 'train.batch_size=8', 'train.steps=400', 'train.log_every=1'];

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'kexue-signals-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Starts `kexue train ner` into runDir and resolves once it has logged `step`. */
function startTraining(runDir: string, step: number): Promise<{ child: ChildProcess; stderr: () => string; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> }> {
  const child = spawn(process.execPath, [bin, 'train', 'ner', ...TINY, '--run-dir', runDir], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes(`step ${step}/`)) resolve({ child, stderr: () => err, exit });
    });
    void exit.then(() => reject(new Error(`kexue exited before step ${step}: ${err}`)));
  });
}

const lastCheckpoint = (runDir: string) => (JSON.parse(readFileSync(path.join(runDir, 'checkpoints.json'), 'utf8')) as { last: { step: number } }).last.step;

/** Processes whose command line names the run directory. */
const processesOf = (runDir: string) => spawnSync('pgrep', ['-f', runDir], { encoding: 'utf8' }).stdout.trim();

/** Resumes a run for two more updates. */
function resume(runDir: string): { code: number | null; stderr: string; stdout: string } {
  const r = spawnSync(process.execPath, [bin, 'train', 'ner', '--resume', runDir, `train.stop_at=${lastCheckpoint(runDir) + 2}`], { cwd: root, env, encoding: 'utf8' });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}

describe('signals', () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`${signal} stops after the current update with a checkpoint; the run resumes`, async () => {
      const runDir = path.join(tmp, signal);
      const run = await startTraining(runDir, 3);
      run.child.kill(signal);
      const { code } = await run.exit;
      expect(code).toBe(0);
      const stopped = run.stderr().match(/stopped at step (\d+) \(interrupted\) with a checkpoint, trained for \d+:\d\d; continue with: kexue train ner --resume /);
      expect(stopped, run.stderr()).not.toBeNull();
      expect(lastCheckpoint(runDir)).toBe(Number(stopped![1]));
      expect(existsSync(path.join(runDir, 'lock'))).toBe(false);
      const r = resume(runDir);
      expect(r.code).toBe(0);
      expect(r.stderr).toContain(`resuming at step ${stopped![1]}`);
    });
  }

  it('kill -9 of the kexue pid leaves no process of the run, and the run resumes', async () => {
    const runDir = path.join(tmp, 'killed');
    const run = await startTraining(runDir, 3);
    run.child.kill('SIGKILL');
    const { signal } = await run.exit;
    expect(signal).toBe('SIGKILL');
    expect(processesOf(runDir)).toBe('');
    // it died before its first checkpoint: the directory holds its leftovers and a stale lock,
    // which a new run into it takes over
    expect(existsSync(path.join(runDir, 'lock'))).toBe(true);
    const again = spawnSync(process.execPath, [bin, 'train', 'ner', ...TINY.filter((k) => !k.startsWith('train.steps')), 'train.steps=6', '--run-dir', runDir], { cwd: root, env, encoding: 'utf8' });
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).toContain(`took over the lock of ${runDir} from process ${run.child.pid}`);
    expect(again.stderr).toContain('held a run that stopped before its first checkpoint: starting it anew');
    expect(lastCheckpoint(runDir)).toBe(6);
  });

  it('kill -9 after a checkpoint: the run resumes from it, taking over the lock', async () => {
    const runDir = path.join(tmp, 'killed-later');
    const first = spawnSync(process.execPath, [bin, 'train', 'ner', ...TINY, 'train.save_every=2', 'train.stop_at=4', '--run-dir', runDir], { cwd: root, env, encoding: 'utf8' });
    expect(first.status, first.stderr).toBe(0);
    const child = spawn(process.execPath, [bin, 'train', 'ner', '--resume', runDir], { cwd: root, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    await new Promise<void>((resolve) => child.stderr.on('data', (d: Buffer) => ((err += d.toString()), err.includes('step 7/') && resolve())));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.on('exit', resolve));
    expect(processesOf(runDir)).toBe('');
    const saved = lastCheckpoint(runDir);
    expect(saved).toBe(6);
    const r = resume(runDir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`took over the lock of ${runDir} from process ${child.pid}`);
    expect(r.stderr).toContain('resuming at step 6');
  });
});
