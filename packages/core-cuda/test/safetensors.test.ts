import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectCode } from './helpers.js';

describe('safetensors', () => {
  it('round-trips every dtype with metadata, atomically', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kx-st-'));
    const file = path.join(dir, 'w.safetensors');
    const tensors = {
      'a.weight': kx.tensor(new Float32Array([1, -2, 3.5, 4]), [2, 2]),
      half: kx.tensor([0.1, 0.2, 0.3], [3], { dtype: 'float16' }),
      bf: kx.tensor([1e-3, 7], [1, 2], { dtype: 'bfloat16' }),
      ids: kx.tensor(new Int32Array([1, 2, 3])),
      mask: kx.tensor(new Uint8Array([1, 0])),
      empty: kx.zeros([0, 4]),
    };
    await kx.io.saveSafetensors(file, tensors, { format: 'pt' });
    expect(readdirSync(dir)).toEqual(['w.safetensors']); // no temporary file left behind
    const loaded = kx.io.loadSafetensors(file);
    expect(loaded.metadata).toEqual({ format: 'pt' });
    for (const [name, t] of Object.entries(tensors)) {
      const back = loaded.tensors[name]!;
      expect(back.dtype).toBe(t.dtype);
      expect(back.shape).toEqual(t.shape);
      expect(Array.from(back.dataSync())).toEqual(Array.from(t.dataSync()));
    }
    // The header is 8-byte aligned JSON, readable by other implementations.
    const bytes = readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    expect(JSON.parse(bytes.subarray(8, 8 + n).toString())['a.weight'].dtype).toBe('F32');
    kx.dispose([tensors, loaded.tensors]);
  });

  it('rejects truncated and malformed files with E_FORMAT, missing files with E_IO', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kx-st-'));
    const file = path.join(dir, 'w.safetensors');
    const t = kx.tensor(new Float32Array(16), [4, 4]);
    await kx.io.saveSafetensors(file, { t });
    const good = readFileSync(file);
    const bad = path.join(dir, 'bad.safetensors');
    writeFileSync(bad, good.subarray(0, good.length - 4));
    expectCode(() => kx.io.loadSafetensors(bad), 'E_FORMAT');
    writeFileSync(bad, good.subarray(0, 5));
    expectCode(() => kx.io.loadSafetensors(bad), 'E_FORMAT');
    const corrupt = Buffer.from(good);
    corrupt.write('}}}', 8 + 1);
    writeFileSync(bad, corrupt);
    expectCode(() => kx.io.loadSafetensors(bad), 'E_FORMAT');
    const huge = Buffer.from(good);
    huge.writeBigUInt64LE(BigInt(1) << BigInt(40), 0);
    writeFileSync(bad, huge);
    expectCode(() => kx.io.loadSafetensors(bad), 'E_FORMAT');
    expectCode(() => kx.io.loadSafetensors(path.join(dir, 'none.safetensors')), 'E_IO');
    t.dispose();
  });

  it('keeps the previous file when a save fails', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kx-st-'));
    const file = path.join(dir, 'w.safetensors');
    const t = kx.tensor([1, 2, 3]);
    await kx.io.saveSafetensors(file, { t });
    const before = readFileSync(file);
    await expect(kx.io.saveSafetensors(file, { t, bad: 3 as unknown as kx.Tensor })).rejects.toMatchObject({ code: 'E_ARG' });
    expect(readFileSync(file)).toEqual(before);
    await expect(kx.io.saveSafetensors(path.join(dir, 'no', 'such', 'dir.safetensors'), { t })).rejects.toMatchObject({ code: 'E_IO' });
    t.dispose();
  });
});
