/**
 * The mixed-precision policy on the CPU (which stores float16/bfloat16 and computes in float32):
 * float32 masters with half activations inside the forward, tiny NER runs in bf16 and fp16 that
 * track the fp32 run, a dynamic loss scaler that skips an overflowing step and halves its scale,
 * a resumed fp16 run that continues from the checkpointed scale, and typed errors for bad settings.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as kx from '@kexue/core-cuda';
import { Tiger } from '@kexue/optimizers';
import {
  BUNDLED_VOCABS,
  NerModel,
  PrecisionPolicy,
  encodeNer,
  entityTypes,
  loadTokenizer,
  nerBatch,
  parseLossScale,
  readNerData,
  readTrainerState,
  sparseGlobalPointerLoss,
  nerTask,
  flatten,
  type ConfigValues,
  type NerConfig,
} from '@kexue/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { expectCode } from '../../core-cuda/test/helpers.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const TRAIN = path.join(repoRoot, 'packages/models/demo/cluener/train.jsonl');
const STEPS = 24;

/** The tiny NER run of the CLI tests (2-layer hidden-32 RoFormer + Efficient GlobalPointer), without a dev set. */
function tinyConfig(extra: ConfigValues<NerConfig> = {}): NerConfig {
  const tiny: ConfigValues<NerConfig> = {
    data: { train: TRAIN, dev: '', max_length: 48 },
    model: { hidden: 32, layers: 2, heads: 2, intermediate: 64 },
    head: { size: 16 },
    optim: { lr: 5e-3 },
    train: { batch_size: 8, epochs: 1, steps: STEPS, log_every: 2 },
  };
  return nerTask.resolve({ values: { ...flatten(tiny), ...flatten(extra) } });
}

type TrainRecord = { step: number; loss: number; lr: number; grad_norm: number; loss_scale?: number; skipped_steps?: number };

const trainRecords = (runDir: string): TrainRecord[] =>
  readFileSync(path.join(runDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as TrainRecord & { kind: string })
    .filter((r) => r.kind === 'train');

const lastCheckpoint = (runDir: string): string => {
  const index = JSON.parse(readFileSync(path.join(runDir, 'checkpoints.json'), 'utf8')) as { last: { dir: string } };
  return path.join(runDir, index.last.dir);
};

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'kexue-precision-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Trains a fresh run with this config, or (resume) continues the run of that name from its own config. */
async function run(name: string, config: NerConfig, resume = false): Promise<string> {
  const runDir = path.join(tmp, name);
  await nerTask.train(resume ? { resume: runDir } : { values: config, runDir });
  return runDir;
}

describe('PrecisionPolicy', () => {
  it('picks loss scaling by dtype: dynamic for fp16, none for bf16 and fp32', () => {
    expect(new PrecisionPolicy().compute).toBe('float32');
    expect(new PrecisionPolicy().lossScale).toBeNull();
    expect(new PrecisionPolicy({ compute: 'fp16' }).lossScale).toBe('dynamic');
    expect(new PrecisionPolicy({ compute: 'bf16' }).lossScale).toBeNull();
    expect(new PrecisionPolicy({ compute: 'bfloat16', lossScale: 'dynamic' }).createScaler()?.dynamic).toBe(true);
    expect(new PrecisionPolicy({ compute: 'fp16', lossScale: 'none' }).createScaler()).toBeNull();
    const fixed = new PrecisionPolicy({ compute: 'fp16', lossScale: 1024 }).createScaler()!;
    expect([fixed.dynamic, fixed.scale]).toEqual([false, 1024]);
    expect(PrecisionPolicy.fromConfig({}).compute).toBe('float32');
    expect(PrecisionPolicy.fromConfig({ precision: 'bf16', loss_scale: '512' }).lossScale).toBe(512);
  });

  it('rejects bad settings with E_ARG', () => {
    const bad = [
      () => new PrecisionPolicy({ compute: 'fp8' as never }),
      () => PrecisionPolicy.fromConfig({ precision: 'half' }),
      () => PrecisionPolicy.fromConfig({ precision: 'fp16', loss_scale: '0' }),
      () => parseLossScale('static'),
      () => parseLossScale(-2),
      () => new PrecisionPolicy({ compute: 'bf16', dynamic: { scale: 8 } }),
      () => new PrecisionPolicy({ compute: 'fp16', dynamic: { scale: -1 } }),
    ];
    for (const f of bad) expectCode(f, 'E_ARG');
    expect(() => PrecisionPolicy.fromConfig({ precision: 'fp8' })).toThrow(/precision must be fp32, fp16 or bf16/);
  });
});

describe('the forward under a policy', () => {
  let model: NerModel;
  let batch: () => ReturnType<typeof nerBatch>;
  let labels: string[];

  beforeAll(async () => {
    const records = await readNerData(TRAIN);
    labels = entityTypes(records);
    const tokenizer = loadTokenizer(BUNDLED_VOCABS.bertBaseChinese);
    const encoded = encodeNer(records.slice(0, 4), tokenizer, labels, 32);
    const c = tinyConfig();
    model = new NerModel(c.model, c.head, tokenizer.vocabSize, labels.length, { seed: 1 });
    model.eval();
    batch = () => nerBatch(encoded, labels.length, tokenizer.padId);
  });
  afterAll(() => model.dispose());

  for (const compute of ['bfloat16', 'float16'] as const) {
    it(`runs activations in ${compute} over float32 masters and returns float32 gradients`, () => {
      const policy = new PrecisionPolicy({ compute, lossScale: 'none' });
      const params = model.namedParameters();
      const seen: Record<string, string> = {};
      const { value, grads } = kx.valueAndGrad(
        () =>
          policy.forward(model, () => {
            const b = batch();
            const hidden = model.encoder.forward(b.ids, { attentionMask: b.mask }).lastHiddenState;
            const logits = model.head.forward(hidden, b.mask);
            seen.hidden = hidden.dtype;
            seen.logits = logits.dtype;
            return sparseGlobalPointerLoss(logits, b.labels);
          }),
        params,
      );
      expect(seen).toEqual({ hidden: compute, logits: compute });
      expect(value.dtype).toBe('float32');
      expect(Number.isFinite(value.item())).toBe(true);
      for (const [name, p] of Object.entries(model.namedParameters())) {
        expect(p).toBe(params[name]);
        expect(p.dtype).toBe('float32');
        expect(grads[name]!.dtype).toBe('float32');
      }
      // the float32 loss of the same weights is close: bf16 keeps 8 bits of mantissa, fp16 11
      const full = kx.tidy(() => {
        const b = batch();
        return sparseGlobalPointerLoss(model.forward(b.ids, b.mask), b.labels).item();
      });
      expect(Math.abs(value.item() - full) / full).toBeLessThan(compute === 'bfloat16' ? 2e-2 : 2e-3);
      kx.dispose([value, Object.values(grads)]);
      // outside the policy the model computes in float32 again
      const after = kx.tidy(() => {
        const b = batch();
        return model.forward(b.ids, b.mask).dtype;
      });
      expect(after).toBe('float32');
    });
  }

  it('does not nest views', () => {
    const policy = new PrecisionPolicy({ compute: 'bf16' });
    expect(() => kx.tidy(() => policy.forward(model, () => policy.forward(model, () => kx.scalar(0))))).toThrow(kx.ArgumentError);
  });

  it('skips an fp16 update whose scaled gradients overflow and halves the scale', () => {
    const policy = new PrecisionPolicy({ compute: 'fp16', dynamic: { scale: 2 ** 40 } });
    const scaler = policy.createScaler()!;
    const optimizer = new Tiger({ learningRate: 1e-3 });
    const params = model.namedParameters();
    const bytes = (t: kx.Tensor) => Buffer.from(t.dataSync().slice().buffer);
    const before = Object.fromEntries(Object.entries(params).map(([k, t]) => [k, bytes(t)]));
    const { value, grads } = kx.valueAndGrad(() => {
      const b = batch();
      return scaler.scaleLoss(policy.forward(model, () => sparseGlobalPointerLoss(model.forward(b.ids, b.mask), b.labels)));
    }, params);
    expect(Number.isFinite(value.item())).toBe(true); // the float32 loss holds 2^40·loss; the fp16 gradients do not
    expect(Number.isFinite(kx.globalNorm(Object.values(grads)))).toBe(false);
    const r = scaler.step(optimizer, params, grads);
    expect(r).toMatchObject({ applied: false, scale: 2 ** 40, result: null });
    expect(scaler.scale).toBe(2 ** 39);
    expect(optimizer.iterations).toBe(0);
    for (const [k, t] of Object.entries(params)) expect(bytes(t).equals(before[k]!), k).toBe(true);
    kx.dispose([value, Object.values(grads)]);
    optimizer.dispose();
  });
});

describe('tiny NER runs in bf16 and fp16', () => {
  let fp32: TrainRecord[];

  beforeAll(async () => {
    fp32 = trainRecords(await run('fp32', tinyConfig()));
  });

  // Every logged loss (a mean over 2 updates) within 3% of the fp32 run's, and on average within 1%.
  const TOLERANCE = { each: 3e-2, mean: 1e-2 };

  for (const [name, extra] of [
    ['bf16', { precision: 'bf16' }],
    ['fp16 with a static loss scale', { precision: 'fp16', loss_scale: '128' }],
  ] as const) {
    it(`${name}: the loss goes down and tracks fp32; checkpoints keep float32 weights`, async () => {
      const dir = await run(name.replace(/ /g, '-'), tinyConfig(extra));
      const half = trainRecords(dir);
      expect(half.map((r) => r.step)).toEqual(fp32.map((r) => r.step));
      expect(half[half.length - 1]!.loss).toBeLessThan(half[0]!.loss * 0.6);
      const rel = half.map((r, i) => Math.abs(r.loss - fp32[i]!.loss) / fp32[i]!.loss);
      expect(Math.max(...rel)).toBeLessThan(TOLERANCE.each);
      expect(rel.reduce((a, b) => a + b, 0) / rel.length).toBeLessThan(TOLERANCE.mean);
      const header = kx.io.readSafetensorsHeader(path.join(lastCheckpoint(dir), 'model.safetensors'));
      expect(new Set(header.entries.map((e) => e.dtype))).toEqual(new Set(['F32']));
    });
  }

  it('fp16 with the default dynamic scaling backs off from 2^16 and still learns', async () => {
    const dir = await run('fp16-dynamic', tinyConfig({ precision: 'fp16' }));
    const recs = trainRecords(dir);
    const last = recs[recs.length - 1]!;
    expect(last.loss).toBeLessThan(recs[0]!.loss * 0.8);
    expect(last.skipped_steps).toBeGreaterThan(0);
    expect(last.skipped_steps).toBeLessThan(STEPS / 2);
    // each skip halves the scale; no growth within 2000 good steps
    expect(last.loss_scale).toBe(2 ** (16 - last.skipped_steps!));
    for (const r of recs) expect(Number.isFinite(r.loss)).toBe(true);
    const state = readTrainerState(lastCheckpoint(dir));
    expect(state.lossScaler!.scale).toBe(last.loss_scale);
    expect(state.lossScaler!.goodSteps).toBeLessThanOrEqual(STEPS - last.skipped_steps!);
  });

  it('an fp16 run resumed mid-way restores the loss scale and matches the uninterrupted run bit for bit', async () => {
    const full = trainRecords(path.join(tmp, 'fp16-dynamic'));
    const dir = await run('fp16-resumed', tinyConfig({ precision: 'fp16', train: { stop_at: 4 } }));
    const stopped = readTrainerState(lastCheckpoint(dir));
    expect(stopped.step).toBe(4);
    expect(stopped.lossScaler!.scale).toBeLessThan(2 ** 16);
    await run('fp16-resumed', tinyConfig({ precision: 'fp16' }), true);
    const resumed = trainRecords(dir);
    const key = (r: TrainRecord) => [r.step, r.loss, r.lr, r.grad_norm, r.loss_scale, r.skipped_steps];
    expect(resumed.map(key)).toEqual(full.map(key));
  });
});
