/**
 * `kexue train|eval|sample vae` end to end in-process on a small synthetic MNIST-layout directory:
 * the sample command writes real PNG files (decoded here by pngjs) of the sizes the grid asks for.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

import { PNG } from 'pngjs';
import { afterAll, describe, expect, it } from 'vitest';

import { idx } from '../../models/test/idx_helpers.js';
import { run } from './run_cli.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'kexue-cli-vae-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('kexue train|eval|sample vae', () => {
  const data = path.join(tmp, 'data');
  mkdirSync(data);
  for (const [split, n] of [['train', 100], ['t10k', 20]] as const) {
    const pixels = Uint8Array.from({ length: n * 64 }, (_, i) => ((Math.floor(i / 64) % 4) * 2 === Math.floor((i % 64) / 8) ? 255 : 0));
    writeFileSync(path.join(data, `${split}-images-idx3-ubyte.gz`), gzipSync(idx([n, 8, 8], pixels)));
  }

  it('trains, evaluates and writes PNG grids of samples and reconstructions', async () => {
    const runDir = path.join(tmp, 'run');
    const t = await run(['train', 'vae', `data.dir=${data}`, 'model.hidden=8', 'train.batch_size=10', 'train.steps=10', '--run-dir', runDir]);
    expect(t.code, t.err).toBe(0);
    expect(t.err).toMatch(/KL constant 3\.2584 nats/);
    const e = await run(['eval', 'vae', runDir]);
    expect(e.code, e.err).toBe(0);
    expect(JSON.parse(e.out)).toMatchObject({ kind: 'vmf', kl: 3.2584, kl_constant: true, images: 20 });
    const out = path.join(tmp, 'pics', 'grid.png');
    const s = await run(['sample', 'vae', runDir, '--out', out, '--rows', '3', '--cols', '5']);
    expect(s.code, s.err).toBe(0);
    const samples = PNG.sync.read(readFileSync(out));
    expect([samples.width, samples.height]).toEqual([5 * 10 + 2, 3 * 10 + 2]);
    const recon = PNG.sync.read(readFileSync(path.join(tmp, 'pics', 'grid-reconstructions.png')));
    expect([recon.width, recon.height]).toEqual([5 * 10 + 2, 2 * 10 + 2]);
    // pngjs decodes to RGBA: the first test image's bright row (row 0) is white, the gap black
    expect(recon.data[(2 * recon.width + 2) * 4]).toBe(255);
    expect(recon.data[0]).toBe(0);
  });

  it('lists vae under kexue sample, and a missing data directory is an error naming the package', async () => {
    const help = await run(['sample', '--help']);
    expect(help.out).toMatch(/vae/);
    const bad = await run(['train', 'vae', `data.dir=${path.join(tmp, 'none')}`, '--run-dir', path.join(tmp, 'bad')]);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/dataset-fashion-mnist/);
  });
});
