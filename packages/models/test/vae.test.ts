/**
 * The vMF-VAE task (ALGORITHMS.md §5.3): the IDX reader (plain and gzip, its errors, the hint for a
 * missing Fashion-MNIST), the model's loss terms against their formulas, gradients of the loss
 * through the reparameterised z against finite differences, and `train|eval|sample vae` on a
 * small synthetic MNIST-layout directory.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

import * as kx from '@kexue/core-cuda';
import { FASHION_MNIST_DIR, VaeModel, bceFromLogits, imageGrid, parseIdx, readImageSplit, readMetrics, vaeTask, type CommandIO, type GrayImage } from '@kexue/models';
import { afterAll, describe, expect, it } from 'vitest';

import { idx } from './idx_helpers.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'kexue-vae-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A directory of 6×6 images: a bright bar at a class-dependent row, gzip for images, plain labels. */
function syntheticMnist(dir: string, train: number, test: number): void {
  mkdirSync(dir, { recursive: true });
  for (const [split, n] of [['train', train], ['t10k', test]] as const) {
    const pixels = new Uint8Array(n * 36);
    const labels = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      labels[i] = i % 3;
      for (let c = 0; c < 6; c++) pixels[i * 36 + (1 + 2 * (i % 3)) * 6 + c] = 200 + ((i * 7 + c) % 55);
    }
    writeFileSync(path.join(dir, `${split}-images-idx3-ubyte.gz`), gzipSync(idx([n, 6, 6], pixels)));
    writeFileSync(path.join(dir, `${split}-labels-idx1-ubyte`), idx([n], labels));
  }
}

describe('IDX files', () => {
  it('reads images and labels, gzip or not', () => {
    const dir = path.join(tmp, 'idx');
    syntheticMnist(dir, 9, 4);
    const set = readImageSplit(dir, 'train');
    expect([set.count, set.rows, set.cols, set.pixels.length]).toEqual([9, 6, 6, 9 * 36]);
    expect(Array.from(set.labels!)).toEqual([0, 1, 2, 0, 1, 2, 0, 1, 2]);
    expect(set.pixels[1 * 6]).toBe(200);
    expect(readImageSplit(dir, 't10k').count).toBe(4);
  });

  it('takes plain files named as some MNIST copies name them (train-images.idx3-ubyte)', () => {
    const dir = path.join(tmp, 'dotted');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 't10k-images.idx3-ubyte'), idx([2, 3, 3], Uint8Array.from({ length: 18 }, (_, i) => i)));
    writeFileSync(path.join(dir, 't10k-labels.idx1-ubyte'), idx([2], Uint8Array.from([7, 9])));
    const set = readImageSplit(dir, 't10k');
    expect([set.count, set.rows, set.cols, set.pixels[17], Array.from(set.labels!)]).toEqual([2, 3, 3, 17, [7, 9]]);
  });

  it('names the file and the problem of a malformed one', () => {
    expect(() => parseIdx(Uint8Array.from([0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]), 'f')).toThrow(/element type 0xd/);
    expect(() => parseIdx(Uint8Array.from([1, 0, 8, 1]), 'f')).toThrow(/first two bytes/);
    expect(() => parseIdx(idx([3, 2, 2], new Uint8Array(11)), 'f')).toThrow(/need 12 data bytes, the file has 11/);
    const dir = path.join(tmp, 'bad-gz');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'train-images-idx3-ubyte.gz'), Buffer.from([0x1f, 0x8b, 1, 2, 3]));
    expect(() => readImageSplit(dir, 'train')).toThrow(/damaged gzip/);
  });

  it('a missing directory says how to install Fashion-MNIST', () => {
    let err: unknown;
    try {
      readImageSplit(path.join(tmp, 'absent'), 'train');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(kx.KexueError);
    expect((err as kx.KexueError).code).toBe('E_IO');
    expect((err as Error).message).toMatch(/dataset-fashion-mnist/);
    expect(FASHION_MNIST_DIR).toBe('/usr/share/datasets/fashion-mnist');
  });
});

describe('image grids', () => {
  it('lays images out row by row with black gaps, values clamped to [0, 1] and scaled to bytes', () => {
    const images = Float32Array.from([0, 1, 0.5, 2, /* image 1 */ 0.2, 0.2, 0.2, 0.2, /* image 2 */ -1, 1, 1, 1]);
    const g = imageGrid(images, 3, 2, 2, 2, 1);
    expect([g.width, g.height]).toEqual([7, 7]);
    const at = (x: number, y: number) => g.data[y * g.width + x];
    expect([at(1, 1), at(2, 1), at(1, 2), at(2, 2)]).toEqual([0, 255, 128, 255]);
    expect(at(4, 1)).toBe(51);
    expect([at(1, 4), at(2, 4)]).toEqual([0, 255]);
    expect([at(4, 4), at(5, 5), at(0, 0), at(3, 1)]).toEqual([0, 0, 0, 0]);
    expect(() => imageGrid(images, 4, 2, 2, 2)).toThrow(/cannot hold 4 images/);
  });
});

describe('the VAE model', () => {
  it('bceFromLogits is Σ −x ln σ(l) − (1 − x) ln(1 − σ(l)), finite for large logits', () => {
    const l = [-3, 0.5, 2, 40, -40];
    const x = [0, 0.3, 1, 1, 0];
    const got = kx.tidy(() => bceFromLogits(kx.tensor(l, [1, 5]), kx.tensor(x, [1, 5])).item());
    const s = (v: number) => 1 / (1 + Math.exp(-v));
    const want = l.reduce((acc, li, i) => acc - (x[i]! > 0 ? x[i]! * Math.log(s(li)) : 0) - (x[i]! < 1 ? (1 - x[i]!) * Math.log(1 - s(li)) : 0), 0);
    expect(got).toBeCloseTo(want, 4);
  });

  it('vmf: μ on the sphere, the KL the constant of (d, κ), the loss the reconstruction alone', () => {
    const model = new VaeModel({ kind: 'vmf', pixels: 10, hidden: 7, latent: 3, kappa: 20 }, { seed: 1 });
    kx.tidy(() => {
      const x = kx.tensor(Float32Array.from({ length: 40 }, (_, i) => (i % 7) / 7), [4, 10]);
      const m = model.encode(x).mean.toFloat32Array();
      for (let b = 0; b < 4; b++) expect(m[3 * b]! ** 2 + m[3 * b + 1]! ** 2 + m[3 * b + 2]! ** 2).toBeCloseTo(1, 5);
      const out = model.forward(x, { method: 'wood' }, { seed: 3 });
      expect(out.kl.item()).toBeCloseTo(kx.vmf.klToUniform(3, 20), 5);
      expect(out.loss.item()).toBe(out.bce.item());
    });
    model.dispose();
  });

  it('gaussian: the loss is BCE plus the KL to N(0, I), which is ≥ 0', () => {
    const model = new VaeModel({ kind: 'gaussian', pixels: 10, hidden: 7, latent: 3, kappa: 0 }, { seed: 1 });
    kx.tidy(() => {
      const x = kx.tensor(Float32Array.from({ length: 40 }, (_, i) => (i % 5) / 5), [4, 10]);
      const out = model.forward(x, { method: 'wood' }, { seed: 3 });
      expect(out.kl.item()).toBeGreaterThanOrEqual(0);
      expect(out.loss.item()).toBeCloseTo(out.bce.item() + out.kl.item(), 4);
    });
    model.dispose();
  });

  it('gradients of the loss through the reparameterised z (w fixed by the key) match finite differences', () => {
    for (const kind of ['vmf', 'gaussian'] as const) {
      const model = new VaeModel({ kind, pixels: 6, hidden: 5, latent: 3, kappa: 10 }, { seed: 4 });
      const icdf = kx.vmf.InverseCdf.build(3, 10);
      const x = kx.tensor(Float32Array.from({ length: 18 }, (_, i) => ((i * 5) % 9) / 9), [3, 6]);
      // the encoder's output weight: its gradient passes through μ (vmf: the normalisation, wμ and ν)
      const w0 = kx.keep(kx.mul(model.encoderMean.weight, 1));
      const r = kx.checkGrad(
        (w) => {
          model.setParameter('encoder_mean.weight', w);
          return model.forward(x, { method: 'icdf', icdf }, { seed: 9 }).loss;
        },
        [w0],
        { eps: 1e-3, atol: 5e-3, rtol: 2e-2 },
      );
      expect(r.ok, `${kind}: ${JSON.stringify(r)}`).toBe(true);
      // and the gradient checked is not zero: it does reach the encoder through z
      const g = kx.tidy(() => {
        const { grads } = kx.valueAndGrad(([w]) => {
          model.setParameter('encoder_mean.weight', w!);
          return model.forward(x, { method: 'icdf', icdf }, { seed: 9 }).loss;
        }, [w0]);
        return grads[0]!.toFloat32Array().reduce((a, v) => a + Math.abs(v), 0);
      });
      expect(g).toBeGreaterThan(1e-2);
      icdf.dispose();
      model.dispose();
    }
  });
});

describe('kexue train|eval|sample vae', () => {
  const data = path.join(tmp, 'mnist');
  syntheticMnist(data, 200, 30);
  const small = { data: { dir: data }, model: { hidden: 16, latent: 3 }, train: { batch_size: 20, steps: 12, eval_every: 6 } };

  it('trains each latent and sampler, evaluates and writes the two grids', async () => {
    for (const [kind, sampler] of [['vmf', 'icdf'], ['vmf', 'pool'], ['vmf', 'wood'], ['gaussian', 'icdf']] as const) {
      const runDir = path.join(tmp, `run-${kind}-${sampler}`);
      const r = await vaeTask.train({ values: { ...small, model: { ...small.model, kind, sampler, pool: 1000 } }, runDir });
      expect(r.step).toBe(12);
      expect(Number.isFinite(r.lastEval!.bce!)).toBe(true);
      expect(r.lastEval!.kl).toBeCloseTo(kind === 'vmf' ? kx.vmf.klToUniform(3, 20) : r.lastEval!.kl!, 4);
      const written: string[] = [];
      const images: Record<string, GrayImage> = {};
      const io: CommandIO = {
        cwd: tmp,
        write: (t) => void written.push(t),
        warn: () => undefined,
        readStdin: async () => '',
        writeImage: async (file, image) => void (images[file] = image),
      };
      await vaeTask.commands.eval!.run(runDir, { options: { checkpoint: 'best', device: 'cpu', split: 't10k' }, positionals: {} }, io);
      const e = JSON.parse(written[0]!);
      expect(e).toMatchObject({ kind, kl_constant: kind === 'vmf', images: 30, data });
      expect(e.loss).toBeCloseTo(e.bce + e.kl, 3);
      if (kind === 'vmf' && sampler === 'icdf') {
        await vaeTask.commands.sample!.run(runDir, { options: { out: 'g/s.png', rows: 4, cols: 3, seed: 1, checkpoint: 'best', device: 'cpu' }, positionals: {} }, io);
        const s = images[path.join(tmp, 'g/s.png')]!;
        const rec = images[path.join(tmp, 'g/s-reconstructions.png')]!;
        expect([s.width, s.height]).toEqual([3 * 8 + 2, 4 * 8 + 2]);
        expect([rec.width, rec.height]).toEqual([3 * 8 + 2, 4 * 8 + 2]);
        // the first row of the reconstructions grid is the first test images themselves
        expect(rec.data[(2 + 1) * rec.width + 2]).toBe(readImageSplit(data, 't10k').pixels[6]);
      }
    }
  });

  it('trains in mixed precision (bf16 compute, float32 images cast to it)', async () => {
    for (const kind of ['vmf', 'gaussian'] as const) {
      const r = await vaeTask.train({ values: { ...small, precision: 'bf16', model: { ...small.model, kind }, train: { ...small.train, steps: 4 } }, runDir: path.join(tmp, `bf16-${kind}`) });
      expect(Number.isFinite(r.lastEval!.loss!)).toBe(true);
    }
  });

  it('trains compiled (train.compile: the noise and w drawn afresh at each replay) as it trains eagerly', async () => {
    for (const kind of ['vmf', 'gaussian'] as const) {
      const values = { ...small, model: { ...small.model, kind }, train: { ...small.train, log_every: 1 } };
      const eager = await vaeTask.train({ values, runDir: path.join(tmp, `eager-${kind}`) });
      const compiled = await vaeTask.train({ values, overrides: ['train.compile=true'], runDir: path.join(tmp, `compiled-${kind}`) });
      const losses = (dir: string) => readMetrics(path.join(dir, 'metrics.jsonl')).filter((r) => r.kind === 'train');
      const [e, c] = [losses(eager.runDir), losses(compiled.runDir)];
      expect(c).toHaveLength(12);
      // every batch has 20 images: one trace of the micro-step and one of the update
      expect(c.at(-1)).toMatchObject({ compile_traces: 2, compile_replays: 22 });
      c.forEach((r, i) => expect(Math.abs((r.loss as number) - (e[i]!.loss as number)) / (e[i]!.loss as number)).toBeLessThanOrEqual(2e-3));
      expect(Math.abs(compiled.lastEval!.loss! - eager.lastEval!.loss!) / eager.lastEval!.loss!).toBeLessThanOrEqual(2e-3);
    }
  });

  it('a resumed run draws what an uninterrupted one draws', async () => {
    const whole = await vaeTask.train({ values: small, runDir: path.join(tmp, 'whole') });
    const dir = path.join(tmp, 'halves');
    await vaeTask.train({ values: { ...small, train: { ...small.train, stop_at: 7 } }, runDir: dir });
    const resumed = await vaeTask.train({ resume: dir });
    expect(resumed.lastEval).toEqual(whole.lastEval);
  });

  it('refuses a data directory without the files, naming the package', async () => {
    await expect(vaeTask.train({ values: { data: { dir: path.join(tmp, 'nothing') } }, runDir: path.join(tmp, 'r-none') })).rejects.toThrow(/dataset-fashion-mnist|no train-images/);
  });
});
