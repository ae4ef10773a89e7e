/**
 * The VAE task on CUDA, against the same runs on the CPU. Where a GPU answers (the GPU check runs
 * every *.cuda.test.ts): each latent and sampler trains on 'cuda' from the CPU run's first loss
 * (the same weights, batches and Philox draws: the inverse CDF's and Wood's w are the CPU's, the
 * noise's Box–Muller rounds its last bits differently), and the checkpoint evaluates and samples
 * there. Without a GPU the file says why it skipped.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

import * as kx from '@kexue/core-cuda';
import { readMetrics, vaeTask, type CommandIO } from '@kexue/models';
import { afterAll, describe, expect, it } from 'vitest';

import { idx } from './idx_helpers.js';

const gpu = kx.cuda.isAvailable();
const tmp = mkdtempSync(path.join(tmpdir(), 'kexue-vae-cuda-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const losses = (runDir: string): number[] =>
  readMetrics(path.join(runDir, 'metrics.jsonl'))
    .filter((r) => r.kind === 'train')
    .map((r) => r.loss as number);

it.runIf(!gpu)('without a GPU the CUDA VAE runs are skipped, with the reason', () => {
  const reason = kx.cuda.unavailableReason();
  console.info(`CUDA VAE runs skipped: ${reason}`);
  expect(reason).not.toBe('');
});

describe.skipIf(!gpu)('the VAE task on CUDA', () => {
  const data = path.join(tmp, 'data');
  mkdirSync(data, { recursive: true });
  for (const [split, n] of [['train', 200], ['t10k', 40]] as const) {
    const pixels = Uint8Array.from({ length: n * 36 }, (_, i) => ((Math.floor(i / 36) % 3) * 2 === Math.floor((i % 36) / 6) ? 230 : 10));
    writeFileSync(path.join(data, `${split}-images-idx3-ubyte.gz`), gzipSync(idx([n, 6, 6], pixels)));
  }

  it('each latent and sampler starts from the CPU run\'s loss, learns, evaluates and samples', async () => {
    for (const [kind, sampler] of [['vmf', 'icdf'], ['vmf', 'wood'], ['vmf', 'pool'], ['gaussian', 'icdf']] as const) {
      const values = (device: string) => ({ data: { dir: data }, model: { kind, sampler, hidden: 16, latent: 3, pool: 1000 }, train: { batch_size: 20, steps: 10, log_every: 1 }, device });
      const cpuRun = path.join(tmp, `${kind}-${sampler}-cpu`);
      const cudaRun = path.join(tmp, `${kind}-${sampler}-cuda`);
      await vaeTask.train({ values: values('cpu'), runDir: cpuRun });
      const r = await vaeTask.train({ values: values('cuda'), runDir: cudaRun });
      const cpu = losses(cpuRun);
      const cuda = losses(cudaRun);
      expect(Math.abs(cuda[0]! - cpu[0]!) / cpu[0]!, `${kind} ${sampler}`).toBeLessThan(1e-4);
      expect(cuda[9]!).toBeLessThan(cuda[0]!);
      expect(Number.isFinite(r.lastEval!.bce!)).toBe(true);
      const written: string[] = [];
      const io: CommandIO = { cwd: tmp, write: (t) => void written.push(t), warn: () => undefined, readStdin: async () => '', writeImage: async () => undefined };
      await vaeTask.commands.eval!.run(cudaRun, { options: { checkpoint: 'best', device: 'cuda', split: 't10k' }, positionals: {} }, io);
      expect(JSON.parse(written[0]!).kind).toBe(kind);
      await vaeTask.commands.sample!.run(cudaRun, { options: { out: 's.png', rows: 2, cols: 2, seed: 0, checkpoint: 'best', device: 'cuda' }, positionals: {} }, io);
    }
  });
});
