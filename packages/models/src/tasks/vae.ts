/**
 * The vMF-VAE of ALGORITHMS.md §5.3 and its Gaussian baseline on Fashion-MNIST (or MNIST), with
 * the MNIST example's hyper-parameters as defaults: latent 4, κ 20, hidden 256, sigmoid 784,
 * batch 100, Adam. `kexue train vae` (model.kind=vmf|gaussian), `kexue eval vae RUN` (test
 * reconstruction BCE per image and the KL: the vMF's constant, the Gaussian's average), and
 * `kexue sample vae RUN --out FILE.png` (a grid of decoded latents drawn from the prior, uniform
 * on the sphere for vmf, and a grid of test images above their reconstructions).
 *
 * Every random number (the vMF's w and ν, the Gaussian's ε) comes from the run's Philox generator,
 * whose offset checkpoints save: a resumed run draws what an uninterrupted one would.
 */
import path from 'node:path';

import { Philox, randomNormal, resolveDevice, tensor, tidy, vmf, type Tensor } from '@kexue/core-cuda';

import { Dataset, type Batch } from '../data/dataset.js';
import { FASHION_MNIST_DIR, readImageSplit, type ImageSet } from '../data/idx.js';
import { buildFromCheckpoint, checkArchitecture, openRunCheckpoint, type Architecture } from '../train/checkpoint.js';
import { imageGrid } from '../vae/images.js';
import { VaeModel, l2Normalize, type VaeConfig } from '../vae/model.js';
import { RequestError, choice, integer, number, pathKey, type ConfigOf } from './config.js';
import { RUN_KEYS, optimKeys, trainKeys } from './sections.js';
import { RUN_DIR_OPTIONS, defineTask, type CommandOption } from './task.js';

/** The config keys of `kexue train vae`. */
export const VAE_KEYS = {
  data: {
    dir: pathKey('dir', FASHION_MNIST_DIR, "a directory of MNIST-layout IDX files ({train,t10k}-images-idx3-ubyte[.gz]): Fashion-MNIST from Debian's dataset-fashion-mnist, or MNIST"),
    train_limit: integer(0, 'train on the first N training images (0 = all 60,000)', { min: 0 }),
    test_limit: integer(0, 'evaluate on the first N test images (0 = all 10,000)', { min: 0 }),
  },
  model: {
    kind: choice(['vmf', 'gaussian'], 'vmf', 'latent: vmf (vMF posterior, uniform prior on the sphere, constant KL) or gaussian (the baseline, KL in the loss)'),
    latent: integer(4, 'latent dimensions d (vmf: the sphere S^{d-1} in R^d)', { min: 2, max: 4096 }),
    hidden: integer(256, 'hidden units of the encoder and the decoder (ReLU)', { min: 1 }),
    kappa: number(20, 'the vMF concentration κ, fixed (vmf)', { min: 0, max: 1e6 }),
    sampler: choice(['icdf', 'pool', 'wood'], 'icdf', "how w is drawn (vmf): icdf (the post's inverse-CDF table), pool (the Keras code's 10^6 pre-drawn values) or wood (Wood's rejection sampler)"),
    delta: number(1e-6, "the inverse-CDF table's grid step (the post's: 1e-7)", { min: 1e-9, max: 0.5 }),
    pool: integer(1_000_000, 'values in the pre-drawn pool (sampler=pool)', { min: 1 }),
  },
  optim: {
    ...optimKeys('constant', {}),
    name: choice(['tiger', 'lion', 'adamw'], 'adamw', 'optimizer (adamw with weight_decay 0 is Adam, as the Keras example)'),
    weight_decay: number(0, 'decoupled weight decay', { min: 0 }),
  },
  train: trainKeys({ batch: 100, epochs: 50, log: 100 }),
  ...RUN_KEYS,
};

/** The resolved config of a VAE run (RUN/config.json). */
export type VaeTaskConfig = ConfigOf<typeof VAE_KEYS> & { task: string };

/** The Philox seed of the held-out scoring's draws: fixed, so every evaluation of every run draws alike. */
const EVAL_SEED = 0x45564145; // 'EVAE'

/** Images [B, pixels] in [0, 1] (pixels / 255) of some indices of a set, on a device. */
export function imageBatch(set: ImageSet, indices: readonly number[], device: string): Tensor {
  const p = set.rows * set.cols;
  const out = new Float32Array(indices.length * p);
  indices.forEach((i, b) => {
    const src = set.pixels.subarray(i * p, (i + 1) * p);
    for (let k = 0; k < p; k++) out[b * p + k] = src[k]! / 255;
  });
  return tensor(out, [indices.length, p], { device });
}

function limited(set: ImageSet, limit: number): ImageSet {
  if (limit <= 0 || limit >= set.count) return set;
  return { ...set, count: limit, pixels: set.pixels.subarray(0, limit * set.rows * set.cols), ...(set.labels ? { labels: set.labels.subarray(0, limit) } : {}) };
}

function modelConfig(c: VaeTaskConfig, pixels: number): VaeConfig {
  return { kind: c.model.kind, pixels, hidden: c.model.hidden, latent: c.model.latent, kappa: c.model.kappa };
}

function vaeArch(m: VaeConfig): Architecture {
  return { 'model.kind': m.kind, 'model.latent': m.latent, 'model.hidden': m.hidden, pixels: m.pixels };
}

/** The w sampler of a run's config on a device (its table or pool built once); dispose() frees the table. */
export function buildSampler(c: VaeTaskConfig, device: string, seed: number): { sampler: vmf.WSampler; dispose(): void } {
  const { latent: d, kappa, sampler, delta, pool } = c.model;
  if (c.model.kind === 'gaussian' || sampler === 'wood') return { sampler: { method: 'wood' }, dispose: () => {} };
  const icdf = vmf.InverseCdf.build(d, kappa, { delta, device });
  if (sampler === 'icdf') return { sampler: { method: 'icdf', icdf }, dispose: () => icdf.dispose() };
  try {
    return { sampler: { method: 'pool', pool: new vmf.WPool(icdf, pool, { seed, offset: 0 }) }, dispose: () => {} };
  } finally {
    icdf.dispose();
  }
}

/**
 * Reconstruction BCE per image (z drawn from the posterior with a fixed key, as in training, and
 * at the posterior's centre), the KL per image, and their sum (the negative ELBO's bound) over a set.
 */
export function scoreVae(model: VaeModel, set: ImageSet, sampler: vmf.WSampler): Record<string, number> {
  const rng = new Philox(EVAL_SEED);
  let bce = 0;
  let bceMean = 0;
  let kl = 0;
  const wasTraining = model.training;
  model.eval();
  try {
    for (let i = 0; i < set.count; i += 500) {
      const idx = Array.from({ length: Math.min(500, set.count - i) }, (_, k) => i + k);
      tidy(() => {
        const x = imageBatch(set, idx, model.device);
        const drawn = model.forward(x, sampler, rng);
        bce += drawn.bce.item() * idx.length;
        kl += drawn.kl.item() * idx.length;
        bceMean += model.forward(x, sampler, null).bce.item() * idx.length;
      });
    }
  } finally {
    model.train(wasTraining);
  }
  return { bce: bce / set.count, kl: kl / set.count, loss: (bce + kl) / set.count, bce_at_mean: bceMean / set.count };
}

/** A trained VAE of a run directory, on a device, in eval mode. */
export function loadVae(runDir: string, which: 'best' | 'last', device: string, warn?: (message: string) => void): { model: VaeModel; config: VaeTaskConfig } {
  const canonical = resolveDevice(device);
  const config = vaeTask.readConfig(runDir);
  const { file, arch } = openRunCheckpoint(runDir, which, 'vae', warn);
  const pixels = Number(arch.pixels);
  const m = modelConfig(config, pixels);
  checkArchitecture(file, arch, vaeArch(m));
  return { model: buildFromCheckpoint(file, () => new VaeModel(m, { seed: 0 }), { device: canonical }).eval(), config };
}

const DATA_OPTION: CommandOption = { name: 'data', type: 'string', valueName: 'DIR', description: "a directory of MNIST-layout IDX files (default: the run's data.dir)" };

/** The VAE task: `kexue train|eval|sample vae`. */
export const vaeTask = defineTask({
  name: 'vae',
  summary: 'a vMF-VAE (or the Gaussian baseline) on Fashion-MNIST: reconstruction BCE, KL, and image grids',
  details: [
    "With no keys it trains the vMF-VAE of the article's MNIST example (latent 4, κ 20, hidden 256,",
    "batch 100, Adam, 50 epochs) on Fashion-MNIST from Debian's dataset-fashion-mnist, and prints the",
    'test reconstruction BCE per image and the KL (for vmf a constant: the loss is the reconstruction alone).',
    '',
    'Examples:',
    '  kexue train vae',
    '  kexue train vae model.kind=gaussian',
    '  kexue train vae train.epochs=5 data.dir=~/mnist model.sampler=wood',
    '  kexue eval vae runs/vae-20250101-120000',
    '  kexue sample vae runs/vae-20250101-120000 --out samples.png',
  ],
  config: VAE_KEYS,
  recipe: {},
  best: { metric: 'loss', higherIsBetter: false },
  check(config) {
    if (config.train.compile && config.model.kind === 'vmf' && config.model.sampler === 'pool') {
      throw new RequestError(
        "train.compile=true cannot use model.sampler=pool: the pool's draws are gathered on the host, which a compiled step would not repeat; use model.sampler=icdf or wood, or train.compile=false",
      );
    }
  },
  async setup(config, run) {
    const train = limited(readImageSplit(config.data.dir, 'train'), config.data.train_limit);
    const test = limited(readImageSplit(config.data.dir, 't10k'), config.data.test_limit);
    if (test.rows !== train.rows || test.cols !== train.cols) throw new RequestError(`data.dir: the test images are ${test.rows}×${test.cols}, the training images ${train.rows}×${train.cols}`);
    const m = modelConfig(config, train.rows * train.cols);
    const model = new VaeModel(m, { seed: config.train.seed });
    const { sampler, dispose } = buildSampler(config, run.device, config.train.seed);
    const klConstant = m.kind === 'vmf' ? ` (KL constant ${vmf.klToUniform(m.latent, m.kappa).toFixed(4)} nats)` : '';
    return {
      model,
      data: new Dataset(Array.from({ length: train.count }, (_, i) => i)),
      inputs: ({ records }: Batch<number>) => ({ images: imageBatch(train, records, run.device) }),
      // the posterior's noise (and w) are drawn from the dropout generator: a compiled step draws afresh at each replay
      lossOf: ({ images }: { images: Tensor }) => model.forward(images, sampler, run.dropout).loss,
      tokens: (records: number[]) => records.length,
      evaluate: async () => scoreVae(model, test, sampler),
      arch: vaeArch(m),
      files: {},
      about: {
        model: `${m.kind}-vae ${m.pixels}-${m.hidden}-${m.latent}${m.kind === 'vmf' ? ` κ=${m.kappa} w by ${config.model.sampler}` : ''}`,
        data: { train: train.count, dev: test.count, unit: 'images' },
        extra: `data ${config.data.dir}${klConstant}`,
      },
      dispose,
    };
  },
  describeEval: (m) => `test BCE ${m.bce!.toFixed(2)} per image, KL ${m.kl!.toFixed(4)}, loss ${m.loss!.toFixed(2)}`,
  commands: {
    eval: {
      summary: 'test reconstruction BCE per image and the KL of a trained VAE run',
      details: [
        'Prints {"kind", "bce", "kl", "kl_constant", "loss", "bce_at_mean", "images", "data"} as JSON: bce is the',
        'summed binary cross-entropy per image with z drawn from the posterior (a fixed key), bce_at_mean with z at',
        "its centre, kl the KL per image (for vmf the constant of d and κ), loss = bce + kl. Default: the run's test split.",
        '',
        'Example:',
        '  kexue eval vae runs/vae-20250101-120000',
      ],
      options: [DATA_OPTION, { name: 'split', type: 'string', valueName: 'SPLIT', description: 'which split', default: 't10k', choices: ['t10k', 'train'] }, ...RUN_DIR_OPTIONS],
      async run(runDir, { options }, io) {
        const { model, config } = loadVae(runDir, options.checkpoint as 'best' | 'last', options.device as string, io.warn);
        const dir = options.data !== undefined ? path.resolve(io.cwd, options.data as string) : config.data.dir;
        const { sampler, dispose } = buildSampler(config, model.device, config.train.seed);
        try {
          const set = readImageSplit(dir, options.split as 't10k' | 'train');
          if (set.rows * set.cols !== model.config.pixels) throw new RequestError(`--data: images of ${set.rows}×${set.cols}, the model takes ${model.config.pixels} pixels`);
          const r = scoreVae(model, set, sampler);
          const round = (v: number) => Number(v.toFixed(4));
          io.write(
            `${JSON.stringify({ kind: model.config.kind, bce: round(r.bce!), kl: round(r.kl!), kl_constant: model.config.kind === 'vmf', loss: round(r.loss!), bce_at_mean: round(r.bce_at_mean!), images: set.count, data: dir })}\n`,
          );
        } finally {
          dispose();
          model.dispose();
        }
      },
    },
    sample: {
      summary: 'PNG grids of images decoded from prior draws and of test reconstructions',
      details: [
        'Writes --out: rows × cols images decoded from latents drawn from the prior (vmf: uniform on the sphere,',
        'a normalised N(0, I) draw as in §5.3; gaussian: N(0, I)); and --reconstructions (default: OUT with',
        '-reconstructions before its extension): test images in odd rows, their reconstructions (z drawn from the',
        'posterior) below them. The same --seed draws the same images.',
        '',
        'Example:',
        '  kexue sample vae runs/vae-20250101-120000 --out samples.png',
      ],
      options: [
        { name: 'out', type: 'string', valueName: 'FILE', description: 'the PNG of prior samples', required: true },
        { name: 'reconstructions', type: 'string', valueName: 'FILE', description: 'the PNG of test images and their reconstructions' },
        { name: 'rows', type: 'integer', valueName: 'N', description: 'grid rows (of the reconstructions: pairs of rows)', default: 10 },
        { name: 'cols', type: 'integer', valueName: 'N', description: 'grid columns', default: 10 },
        { name: 'seed', type: 'integer', valueName: 'N', description: 'seed of the draws', default: 0 },
        DATA_OPTION,
        ...RUN_DIR_OPTIONS,
      ],
      async run(runDir, { options }, io) {
        if (!io.writeImage) throw new RequestError('this program cannot write images');
        const rows = options.rows as number;
        const cols = options.cols as number;
        const seed = options.seed as number;
        if (rows < 1 || cols < 1 || rows * cols > 10_000) throw new RequestError('--rows and --cols must be at least 1, with at most 10,000 images');
        if (!Number.isSafeInteger(seed) || seed < 0) throw new RequestError('--seed must be an integer >= 0');
        const out = path.resolve(io.cwd, options.out as string);
        const ext = path.extname(out);
        const recon = options.reconstructions !== undefined ? path.resolve(io.cwd, options.reconstructions as string) : `${out.slice(0, out.length - ext.length)}-reconstructions${ext || '.png'}`;
        const { model, config } = loadVae(runDir, options.checkpoint as 'best' | 'last', options.device as string, io.warn);
        const { sampler, dispose } = buildSampler(config, model.device, config.train.seed);
        try {
          const dir = options.data !== undefined ? path.resolve(io.cwd, options.data as string) : config.data.dir;
          const test = readImageSplit(dir, 't10k');
          const side = Math.round(Math.sqrt(model.config.pixels));
          const h = test.rows * test.cols === model.config.pixels ? test.rows : side;
          const w = model.config.pixels / h;
          const n = rows * cols;
          const rng = new Philox(seed);
          const prior = tidy(() => model.generate(priorDraw(model, n, rng)).toFloat32Array());
          await io.writeImage(out, imageGrid(prior, n, h, w, cols));
          // pairs of rows: cols test images, then their reconstructions
          const pairs = Math.max(1, Math.floor(rows / 2));
          const idx = Array.from({ length: pairs * cols }, (_, k) => k % test.count);
          const both = tidy(() => {
            const x = imageBatch(test, idx, model.device);
            const y = model.generate(model.latent(x, sampler, rng));
            return { x: x.toFloat32Array(), y: y.toFloat32Array() };
          });
          const p = model.config.pixels;
          const grid = new Float32Array(2 * pairs * cols * p);
          for (let r = 0; r < pairs; r++) {
            grid.set(both.x.subarray(r * cols * p, (r + 1) * cols * p), 2 * r * cols * p);
            grid.set(both.y.subarray(r * cols * p, (r + 1) * cols * p), (2 * r + 1) * cols * p);
          }
          await io.writeImage(recon, imageGrid(grid, 2 * pairs * cols, h, w, cols));
          io.write(`${JSON.stringify({ samples: out, reconstructions: recon, kind: model.config.kind, images: n })}\n`);
        } finally {
          dispose();
          model.dispose();
        }
      },
    },
  },
});

/** n latents from the prior: uniform on the sphere (a normalised N(0, I) draw) for vmf, N(0, I) for gaussian. */
function priorDraw(model: VaeModel, n: number, rng: Philox): Tensor {
  const e = randomNormal([n, model.config.latent], rng, { device: model.device });
  return model.config.kind === 'vmf' ? l2Normalize(e) : e;
}
