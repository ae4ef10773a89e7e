/**
 * Training and evaluation runs on CUDA (the `device` config key), against the same runs on the CPU.
 * Where a GPU answers (the GPU check runs every *.cuda.test.ts): the tiny NER run of the CLI tests
 * on 'cuda' starts from the CPU run's loss (the same weights, batches and dropout masks: within
 * 1e-4 relative before any update), learns and tracks the CPU run; its checkpoint (host tensors)
 * loads for evaluation on either device with the same F1; a run started on the CPU resumes on the
 * GPU; a masked-LM run trains and evaluates there too. Without a GPU the file says why it skipped
 * (what runs everywhere, the typed E_NO_CUDA refusal, is in packages/cli/test/device.test.ts).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as kx from '@kexue/core-cuda';
import { NerPredictor, mlmTask, nerTask, type ConfigValues, type MlmConfig, type NerConfig } from '@kexue/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const gpu = kx.cuda.isAvailable();
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const TRAIN = path.join(repoRoot, 'packages/models/demo/cluener/train.jsonl');
const DEV = path.join(repoRoot, 'packages/models/demo/cluener/dev.jsonl');
const STEPS = 12;
const MODEL: ConfigValues<NerConfig['model']> = { hidden: 32, layers: 2, heads: 2, intermediate: 64 };
const TRAIN_LOOP: ConfigValues<NerConfig['train']> = { batch_size: 8, epochs: 1, steps: STEPS, log_every: 1 };

/** The tiny NER run of the CLI tests (2-layer hidden-32 RoFormer + Efficient GlobalPointer), a loss logged every update. */
function nerConfig(device: string, train: ConfigValues<NerConfig['train']> = {}): ConfigValues<NerConfig> {
  return {
    data: { train: TRAIN, dev: '', max_length: 48 },
    model: MODEL,
    head: { size: 16 },
    optim: { lr: 5e-3 },
    train: { ...TRAIN_LOOP, ...train },
    device,
  };
}

const losses = (runDir: string): number[] =>
  readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { kind: string; loss: number })
    .filter((r) => r.kind === 'train')
    .map((r) => r.loss);

const relative = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'kexue-train-device-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

it.runIf(!gpu)('without a GPU the CUDA training runs are skipped, with the reason', () => {
  const reason = kx.cuda.unavailableReason();
  console.info(`CUDA training runs skipped: ${reason}`);
  expect(reason).not.toBe('');
});

describe.skipIf(!gpu)('training runs on CUDA', () => {
  let cpuRun: string;
  let cudaRun: string;

  beforeAll(async () => {
    cpuRun = path.join(tmp, 'ner-cpu');
    cudaRun = path.join(tmp, 'ner-cuda');
    await nerTask.train({ values: nerConfig('cpu'), runDir: cpuRun });
    await nerTask.train({ values: nerConfig('cuda'), runDir: cudaRun });
  });

  it("a tiny NER run starts from the CPU run's loss (within 1e-4), learns, and tracks it", () => {
    const cpu = losses(cpuRun);
    const cuda = losses(cudaRun);
    expect(cuda).toHaveLength(STEPS);
    for (const l of cuda) expect(Number.isFinite(l)).toBe(true);
    // before any update: the same initial weights (made on the host), batches and dropout masks
    expect(relative(cuda[0]!, cpu[0]!)).toBeLessThan(1e-4);
    expect(cuda[STEPS - 1]!).toBeLessThan(cuda[0]! * 0.8);
    // later steps differ by rounding only, which Tiger's sign update can amplify a little
    for (let i = 0; i < STEPS; i++) expect(relative(cuda[i]!, cpu[i]!), `step ${i + 1}`).toBeLessThan(2e-2);
  });

  it('its checkpoint evaluates on the CPU and on the GPU alike', async () => {
    const onCpu = NerPredictor.load(cudaRun, 'last', 'cpu');
    const onGpu = NerPredictor.load(cudaRun, 'last', 'cuda');
    try {
      expect(onCpu.model.device).toBe('cpu');
      expect(onGpu.model.device).toBe('cuda:0');
      const a = await onCpu.evaluate(DEV);
      const b = await onGpu.evaluate(DEV);
      expect(b.records).toBe(a.records);
      expect(b.overall.gold).toBe(a.overall.gold);
      expect(Math.abs(b.overall.f1 - a.overall.f1)).toBeLessThan(1e-2);
      expect(onGpu.predict(['浙商银行企业信贷部叶老桂博士'])).toHaveLength(1);
    } finally {
      onCpu.dispose();
      onGpu.dispose();
    }
  });

  it('a run started on the CPU resumes on the GPU and ends near the uninterrupted CPU run', async () => {
    const dir = path.join(tmp, 'ner-cpu-then-cuda');
    await nerTask.train({ values: nerConfig('cpu', { stop_at: STEPS / 2 }), runDir: dir });
    const summary = await nerTask.train({ resume: dir, overrides: ['device=cuda'] });
    expect(summary.step).toBe(STEPS);
    const resumed = losses(dir);
    const cpu = losses(cpuRun);
    expect(resumed.slice(0, STEPS / 2)).toEqual(cpu.slice(0, STEPS / 2));
    for (let i = STEPS / 2; i < STEPS; i++) expect(relative(resumed[i]!, cpu[i]!), `step ${i + 1}`).toBeLessThan(2e-2);
  });

  it('a masked-LM run trains and evaluates on the GPU from the CPU run\'s first loss', async () => {
    const config = (device: string): ConfigValues<MlmConfig> => ({
      data: { train: TRAIN, dev: DEV, max_length: 48 },
      model: MODEL,
      optim: { lr: 5e-3 },
      train: { ...TRAIN_LOOP, steps: 4 },
      device,
    });
    const cpuDir = path.join(tmp, 'mlm-cpu');
    const cudaDir = path.join(tmp, 'mlm-cuda');
    const cpu = await mlmTask.train({ values: config('cpu'), runDir: cpuDir });
    const cuda = await mlmTask.train({ values: config('cuda'), runDir: cudaDir });
    expect(relative(losses(cudaDir)[0]!, losses(cpuDir)[0]!)).toBeLessThan(1e-4);
    expect(Number.isFinite(cuda.lastEval!.loss)).toBe(true);
    expect(relative(cuda.lastEval!.loss!, cpu.lastEval!.loss!)).toBeLessThan(2e-2);
    expect(cuda.lastEval!.accuracy).toBeGreaterThanOrEqual(0);
  });
});
