/**
 * PyTorch zip checkpoints: files written by Debian's torch 1.13 (tools/golden/fx_torch_checkpoints.py)
 * read exactly, malicious pickles refused, corrupt archives E_FORMAT.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { PickleDict, PickleGlobal, unpickle } from '../src/io/pickle.js';
import { MemorySource } from '../src/io/source.js';
import { ZipReader } from '../src/io/zip.js';
import { expectCode } from './helpers.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'torch');
const fixture = (name: string): string => path.join(fixtures, name);

function expectSameAsReference(tensors: Record<string, kx.Tensor>): void {
  const { tensors: expected, metadata } = kx.io.readSafetensors(fixture('expected.safetensors'));
  const names: string[] = JSON.parse(metadata.names!);
  expect(Object.keys(tensors).sort()).toEqual([...names].sort());
  for (const name of names) {
    const t = tensors[name]!;
    const e = expected[name]!;
    expect(t.dtype, name).toBe(e.dtype);
    expect(t.shape, name).toEqual(e.shape);
    expect(Array.from(t.dataSync()), name).toEqual(Array.from(e.dataSync())); // bit for bit
  }
  kx.dispose(expected);
}

describe('PyTorch zip checkpoints', () => {
  it('reads a torch.save file bit for bit: every dtype, views, shared storages, nested dicts', () => {
    const before = kx.memory().tensors;
    const tensors = kx.io.loadTorch(fixture('state.pt'));
    expectSameAsReference(tensors);
    const t = tensors;
    expect(t['model.0.weight']!.shape).toEqual([4, 5]);
    expect(t.f64!.dtype).toBe('float32');
    expect(t.i64!.dtype).toBe('int32');
    expect(Array.from(t.i64!.dataSync())).toEqual([0, 1, -1, 2147483647, -2147483648, 123456789]);
    expect(t.mask!.dtype).toBe('uint8');
    expect(Array.from(t.mask!.dataSync())).toEqual([1, 0, 1, 0, 0, 1]);
    expect(t.transposed!.shape).toEqual([8, 6]);
    expect(Array.from(t['i64_t']!.dataSync())).toEqual([0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
    expect(t.scalar!.shape).toEqual([]);
    expect(t.scalar!.item()).toBe(2.5);
    expect(t.empty!.shape).toEqual([0, 4]);
    expect(t['pair.1']!.dtype).toBe('int32');
    kx.dispose(tensors);
    expect(kx.memory().tensors).toBe(before);
  });

  it('gives the saved object too: numbers, strings, the same Tensor objects', () => {
    const { tensors, value } = kx.io.readTorch(fixture('state.pt'));
    const v = value as Record<string, unknown>;
    expect(v.epoch).toBe(7);
    expect(v.lr).toBe(0.125);
    expect(v.name).toBe('bert-tiny');
    expect(v.big).toBe(2 ** 40);
    expect((v.model as Record<string, unknown>)['0.weight']).toBe(tensors['model.0.weight']);
    expect((v.history as unknown[])[1]).toBe(tensors['history.1']);
    // An optimizer's state dict: integer keys, tuples, None.
    const optim = v.optim as { state: Record<string, Record<string, kx.Tensor>>; param_groups: Array<Record<string, unknown>> };
    expect(optim.param_groups[0]).toMatchObject({ lr: 0.001, betas: [0.9, 0.999], foreach: null, amsgrad: false, params: [0, 1, 2, 3, 4] });
    expect(optim.state['4']!.exp_avg).toBe(tensors['optim.state.4.exp_avg']);
    expect(tensors['optim.state.4.exp_avg']!.shape).toEqual([7, 3]);
    kx.dispose(tensors);
  });

  it('reads deflated and zip64 archives the same', () => {
    for (const name of ['state_deflate.pt', 'state_zip64.pt']) {
      const tensors = kx.io.loadTorch(fixture(name));
      expectSameAsReference(tensors);
      kx.dispose(tensors);
    }
    // The zip64 archive really has saturated 32-bit fields (sizes and offsets in zip64 extras).
    const zip = new ZipReader(new MemorySource(new Uint8Array(readFileSync(fixture('state_zip64.pt'))), 'zip64'));
    const bytes = readFileSync(fixture('state_zip64.pt'));
    expect(bytes.includes(Buffer.from([0x50, 0x4b, 0x06, 0x06]))).toBe(true);
    expect([...zip.entries.values()].some((e) => e.localOffset > 0 && e.size > 0)).toBe(true);
  });

  it('checks int64 and float64 ranges, naming the tensor, and frees what it made', () => {
    const before = kx.memory().tensors;
    const e1 = expectCode(() => kx.io.loadTorch(fixture('int64_range.pt')), 'E_FORMAT');
    expect(e1.message).toContain("tensor 'ids'");
    expect(e1.message).toContain('1099511627776');
    const e2 = expectCode(() => kx.io.loadTorch(fixture('float64_range.pt')), 'E_FORMAT');
    expect(e2.message).toContain("tensor 'w'");
    expect(e2.message).toContain('float32');
    expect(kx.memory().tensors).toBe(before);
  });

  it('refuses malicious pickles without executing anything', () => {
    const cases: Array<[string, RegExp]> = [
      ['evil_global_reduce.pt', /global os\.system is not allowed/],
      ['evil_eval.pt', /global (__builtin__|builtins)\.eval is not allowed/],
      ['evil_reduce_class.pt', /global posix\.system is not allowed/],
      ['evil_stack_global.pt', /global posix\.system is not allowed/],
      ['evil_module.pt', /global torch\.nn\.modules\.linear\.Linear is not allowed/],
      ['evil_bad_args.pt', /_rebuild_tensor_v2: the storage is a string/],
    ];
    for (const [name, pattern] of cases) {
      expect(expectCode(() => kx.io.loadTorch(fixture(name)), 'E_FORMAT').message, name).toMatch(pattern);
    }
    expect(expectCode(() => kx.io.loadTorch(fixture('legacy.pt')), 'E_FORMAT').message).toMatch(/legacy/);
  });

  it('refuses opcodes that build objects, and malformed streams', () => {
    const globals = new Map([['collections.OrderedDict', new PickleGlobal('collections', 'OrderedDict', () => new PickleDict('OrderedDict'))]]);
    const run = (bytes: number[] | string): unknown =>
      unpickle(typeof bytes === 'string' ? new Uint8Array(Buffer.from(bytes, 'latin1')) : new Uint8Array(bytes), { name: 'p', globals });
    const refused: Array<[string, RegExp]> = [
      ['\x80\x02ccollections\nOrderedDict\n)\x81.', /NEWOBJ is not allowed/], // NEWOBJ on an allowed class
      ['\x80\x02(ccollections\nOrderedDict\no.', /OBJ is not allowed/],
      ['\x80\x02(ibuiltins\nlist\n.', /INST is not allowed/],
      ['\x80\x02\x82\x01.', /EXT1 is not allowed/],
      ['\x80\x02P0\n.', /PERSID is not allowed/],
      ['\x80\x02K\x01Q.', /persistent ids are not allowed/],
      ['\x80\x02}K\x01b.', /BUILD on a dict is not allowed/],
      ['\x80\x02K\x01K\x02R.', /REDUCE calls a number/],
      ['\x80\x02X\x05\x00\x00\x00ab', /truncated/],
      ['\x80\x02h\x07.', /memo key 7/],
      ['\x80\x02a.', /stack underflow/],
      ['\x80\x02K\x01K\x02.', /STOP with 2 values/],
      ['\x80\x02K\x01\x85K\x02a.', /APPEND on a tuple/],
      ['\x80\x02}]K\x01s.', /a dict key is a list|SETITEM on a list/],
      ['\x80\x09.', /protocol 9/],
      ['\x80\x02', /truncated/],
    ];
    for (const [bytes, pattern] of refused) {
      expect(expectCode(() => run(bytes), 'E_FORMAT').message, JSON.stringify(bytes)).toMatch(pattern);
    }
    // An allowed global is only looked up (a call needs REDUCE); plain data reads as it should.
    expect(run('\x80\x02ccollections\nOrderedDict\n.')).toBeInstanceOf(PickleGlobal);
    const d = run('\x80\x02}q\x00(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00b]q\x01(G?\xf0\x00\x00\x00\x00\x00\x00\x8a\x05\x00\x00\x00\x00\x01\x88N\x8a\x01\xffM\x2c\x01J\xfb\xff\xff\xffC\x02hieu.') as PickleDict;
    expect(d.entries.get('a')).toBe(1);
    expect(d.entries.get('b')).toEqual([1, 2 ** 32, true, null, -1, 300, -5, new Uint8Array([0x68, 0x69])]);
  });

  it('survives random corruption of the pickle: a value or E_FORMAT, never a crash', () => {
    const zip = new ZipReader(new MemorySource(new Uint8Array(readFileSync(fixture('state.pt'))), 'state.pt'));
    const name = [...zip.entries.keys()].find((n) => n.endsWith('/data.pkl'))!;
    const pkl = zip.read(zip.entry(name));
    const globals = new Map<string, PickleGlobal>();
    let seed = 7;
    for (let i = 0; i < 500; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const mutated = pkl.slice();
      mutated[seed % mutated.length] = (seed >>> 8) & 0xff;
      try {
        unpickle(mutated.subarray(0, mutated.length - ((seed >>> 20) % 3)), { name: 'fuzz', globals });
      } catch (err) {
        expect((err as kx.KexueError).code, String(err)).toBe('E_FORMAT');
      }
    }
  });

  it('rejects truncated and corrupt archives with E_FORMAT, missing files with E_IO', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kx-pt-'));
    const bad = path.join(dir, 'bad.pt');
    const good = readFileSync(fixture('state.pt'));
    const before = kx.memory().tensors;
    for (const cut of [good.length - 1, good.length - 30, Math.floor(good.length / 2), 100, 3, 0]) {
      writeFileSync(bad, good.subarray(0, cut));
      expect(expectCode(() => kx.io.loadTorch(bad), 'E_FORMAT').message).toMatch(/truncated|not a zip|end-of-central-directory/);
    }
    // A flipped byte inside a storage: the CRC-32 catches it.
    const zip = new ZipReader(new MemorySource(new Uint8Array(good), 'state.pt'));
    const storage = [...zip.entries.values()].find((e) => /\/data\/\d+$/.test(e.name) && e.size > 16)!;
    const corrupt = Buffer.from(good);
    corrupt[zip.dataOffset(storage) + 5]! ^= 0x40;
    writeFileSync(bad, corrupt);
    expect(expectCode(() => kx.io.loadTorch(bad), 'E_FORMAT').message).toMatch(/CRC-32 mismatch/);
    // A missing storage entry: rename it in both headers.
    const renamed = Buffer.from(good.toString('latin1').split(storage.name).join(storage.name.replace('/data/', '/dat_/')), 'latin1');
    writeFileSync(bad, renamed);
    expect(expectCode(() => kx.io.loadTorch(bad), 'E_FORMAT').message).toMatch(/no storage/);
    // Random corruption anywhere in the archive.
    let seed = 99;
    for (let i = 0; i < 300; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const mutated = Buffer.from(good);
      mutated[seed % mutated.length] = (seed >>> 8) & 0xff;
      writeFileSync(bad, mutated);
      try {
        kx.dispose(kx.io.loadTorch(bad));
      } catch (err) {
        expect((err as kx.KexueError).code, String(err)).toBe('E_FORMAT');
      }
    }
    expect(kx.memory().tensors).toBe(before);
    writeFileSync(bad, 'not a checkpoint at all, just some text that is long enough');
    expect(expectCode(() => kx.io.loadTorch(bad), 'E_FORMAT').message).toMatch(/not a zip|end-of-central-directory/);
    expect(expectCode(() => kx.io.loadTorch(path.join(dir, 'missing.bin')), 'E_IO').message).toContain('missing.bin');
    expectCode(() => kx.io.loadTorch(dir), 'E_IO');
  });

  it('loads onto a requested device', () => {
    if (kx.cuda.isAvailable()) {
      const t = kx.io.loadTorch(fixture('state.pt'), { device: 'cuda' });
      expect(t.f32!.device).toBe('cuda:0');
      expectSameAsReference(t);
      kx.dispose(t);
    } else {
      expectCode(() => kx.io.loadTorch(fixture('state.pt'), { device: 'cuda' }), 'E_NO_CUDA');
    }
  });
});
