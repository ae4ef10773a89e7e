import { mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectCode, expectCodeAsync } from './helpers.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'torch');

function tmpDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'kx-st-'));
}

interface RawEntry {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** A safetensors file built by hand (header JSON as given, no padding unless asked). */
function build(entries: Record<string, RawEntry>, opts: { pad?: boolean; header?: (h: Record<string, unknown>) => void; tail?: Uint8Array } = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, e] of Object.entries(entries)) {
    header[name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes.length] };
    offset += e.bytes.length;
  }
  opts.header?.(header);
  let json = JSON.stringify(header);
  if (opts.pad) json += ' '.repeat((8 - ((8 + json.length) % 8)) % 8);
  const head = Buffer.from(json);
  const tail = opts.tail ?? new Uint8Array(0);
  const out = Buffer.alloc(8 + head.length + offset + tail.length);
  out.writeBigUInt64LE(BigInt(head.length), 0);
  head.copy(out, 8);
  let at = 8 + head.length;
  for (const e of Object.values(entries)) {
    out.set(e.bytes, at);
    at += e.bytes.length;
  }
  out.set(tail, at);
  return out;
}

const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

describe('safetensors', () => {
  it('round-trips every dtype with metadata, atomically', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'w.safetensors');
    const tensors = {
      'a.weight': kx.tensor(new Float32Array([1, -2, 3.5, 4]), [2, 2]),
      half: kx.tensor([0.1, 0.2, 0.3], [3], { dtype: 'float16' }),
      bf: kx.tensor([1e-3, 7], [1, 2], { dtype: 'bfloat16' }),
      ids: kx.tensor(new Int32Array([1, -2, 2147483647])),
      mask: kx.tensor(new Uint8Array([1, 0])),
      empty: kx.zeros([0, 4]),
      scalar: kx.scalar(3),
    };
    await kx.io.saveSafetensors(file, tensors, { format: 'pt' });
    expect(readdirSync(dir)).toEqual(['w.safetensors']); // no temporary file left behind
    const loaded = kx.io.readSafetensors(file);
    expect(loaded.metadata).toEqual({ format: 'pt' });
    expect(Object.keys(loaded.tensors).sort()).toEqual(Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) {
      const back = loaded.tensors[name]!;
      expect(back.dtype).toBe(t.dtype);
      expect(back.device).toBe('cpu');
      expect(back.shape).toEqual(t.shape);
      expect(Array.from(back.dataSync())).toEqual(Array.from(t.dataSync()));
    }
    // loadSafetensors gives the same tensors as a plain record; the bytes parse the same in memory.
    const plain = kx.io.loadSafetensors(file, { device: 'cpu' });
    expect(Object.keys(plain).sort()).toEqual(Object.keys(tensors).sort());
    const parsed = kx.io.parseSafetensors(readFileSync(file));
    expect(Array.from(parsed.tensors['a.weight']!.dataSync())).toEqual([1, -2, 3.5, 4]);
    expect(kx.io.serializeSafetensors(tensors, { format: 'pt' })).toEqual(new Uint8Array(readFileSync(file)));
    // The header is 8-byte aligned JSON, readable by other implementations.
    const bytes = readFileSync(file);
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    expect(JSON.parse(bytes.subarray(8, 8 + n).toString())['a.weight'].dtype).toBe('F32');
    const header = kx.io.readSafetensorsHeader(file);
    expect(header.metadata).toEqual({ format: 'pt' });
    expect(header.entries.find((e) => e.name === 'bf')).toMatchObject({ dtype: 'BF16', shape: [1, 2] });
    kx.dispose([tensors, loaded.tensors, plain, parsed.tensors]);
  });

  it('reads every dtype of a file from an independent writer (PyTorch + numpy), converting as documented', () => {
    const { tensors, metadata } = kx.io.readSafetensors(path.join(fixtures, 'dtypes.safetensors'));
    expect(metadata.source).toBe('fx_torch_checkpoints.py');
    const want: Record<string, kx.DType> = { f64: 'float32', i64: 'int32', i16: 'int32', i8: 'int32', bool: 'uint8', u8: 'uint8', f16: 'float16', bf16: 'bfloat16', f32: 'float32', i32: 'int32' };
    for (const [name, dtype] of Object.entries(want)) {
      const t = tensors[name]!;
      const e = tensors[`${name}.expected`]!;
      expect(t.dtype, name).toBe(dtype);
      expect(e.dtype, name).toBe(dtype);
      expect(t.shape, name).toEqual(e.shape);
      expect(Array.from(t.dataSync()), name).toEqual(Array.from(e.dataSync()));
    }
    expect(Array.from(tensors.i64!.dataSync())).toEqual([3, -4, 2147483647, -2147483648]);
    kx.dispose(tensors);
  });

  it('checks the range of I64/U64/U32 and F64 values, naming the tensor', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'r.safetensors');
    const cases: Array<[string, ArrayBufferView, string]> = [
      ['I64', new BigInt64Array([1n, 2n ** 31n]), '2147483648'],
      ['I64', new BigInt64Array([-(2n ** 31n) - 1n]), '-2147483649'],
      ['U64', new BigUint64Array([5n, 2n ** 63n]), '9223372036854775808'],
      ['U32', new Uint32Array([2 ** 31]), '2147483648'],
      ['F64', new Float64Array([1, 1e39]), '1e+39'],
    ];
    const before = kx.memory().tensors;
    for (const [dtype, data, value] of cases) {
      const n = data.byteLength / (dtype === 'U32' ? 4 : 8);
      writeFileSync(file, build({ fine: { dtype: 'F32', shape: [1], bytes: bytesOf(new Float32Array([1])) }, 'enc.ids': { dtype, shape: [n], bytes: bytesOf(data) } }));
      const err = expectCode(() => kx.io.loadSafetensors(file), 'E_FORMAT');
      expect(err.message).toContain("'enc.ids'");
      expect(err.message).toContain(value);
    }
    expect(kx.memory().tensors).toBe(before); // tensors made before the failure were freed
    // In range: the extremes, infinities and NaN pass.
    writeFileSync(file, build({
      a: { dtype: 'I64', shape: [2], bytes: bytesOf(new BigInt64Array([2n ** 31n - 1n, -(2n ** 31n)])) },
      b: { dtype: 'U64', shape: [1], bytes: bytesOf(new BigUint64Array([2n ** 31n - 1n])) },
      c: { dtype: 'F64', shape: [3], bytes: bytesOf(new Float64Array([Infinity, NaN, 3.4e38])) },
    }));
    const ok = kx.io.loadSafetensors(file);
    expect(Array.from(ok.a!.dataSync())).toEqual([2147483647, -2147483648]);
    expect(Array.from(ok.b!.dataSync())).toEqual([2147483647]);
    expect(Array.from(ok.c!.dataSync())).toEqual([Infinity, NaN, Math.fround(3.4e38)]);
    kx.dispose(ok);
  });

  it('widens float8 (e4m3fn, e5m2) to float16 exactly', () => {
    const file = path.join(tmpDir(), 'f8.safetensors');
    // e4m3fn: 0x38 = 1, 0xb8 = -1, 0x7e = 448 (max), 0x01 = 2^-9 (smallest subnormal), 0x7f = NaN, 0x0c = 2^-6 · 1.5
    // e5m2: 0x3c = 1, 0x7b = 57344 (max), 0x7c = inf, 0x01 = 2^-16
    writeFileSync(file, build({
      e4: { dtype: 'F8_E4M3', shape: [6], bytes: new Uint8Array([0x38, 0xb8, 0x7e, 0x01, 0x7f, 0x0c]) },
      e5: { dtype: 'F8_E5M2', shape: [4], bytes: new Uint8Array([0x3c, 0x7b, 0x7c, 0x01]) },
    }));
    const t = kx.io.loadSafetensors(file);
    expect(t.e4!.dtype).toBe('float16');
    expect(Array.from(t.e4!.toFloat32Array())).toEqual([1, -1, 448, 2 ** -9, NaN, 1.5 * 2 ** -6]);
    expect(Array.from(t.e5!.toFloat32Array())).toEqual([1, 57344, Infinity, 2 ** -16]);
    kx.dispose(t);
  });

  it('reads data that is not aligned in the file (unpadded header)', () => {
    const file = path.join(tmpDir(), 'u.safetensors');
    const bytes = build({
      b: { dtype: 'U8', shape: [3], bytes: new Uint8Array([1, 2, 3]) },
      f: { dtype: 'F32', shape: [2], bytes: bytesOf(new Float32Array([1.5, -2])) },
      d: { dtype: 'F64', shape: [1], bytes: bytesOf(new Float64Array([0.25])) },
      l: { dtype: 'I64', shape: [1], bytes: bytesOf(new BigInt64Array([-7n])) },
    });
    writeFileSync(file, bytes);
    for (const t of [kx.io.loadSafetensors(file), kx.io.parseSafetensors(bytes.subarray(0)).tensors]) {
      expect(Array.from(t.f!.dataSync())).toEqual([1.5, -2]);
      expect(Array.from(t.d!.dataSync())).toEqual([0.25]);
      expect(Array.from(t.l!.dataSync())).toEqual([-7]);
      kx.dispose(t);
    }
  });

  it('validates the header: every problem is E_FORMAT saying what is wrong', () => {
    const file = path.join(tmpDir(), 'h.safetensors');
    const f = (n: number): Uint8Array => bytesOf(new Float32Array(n));
    const cases: Array<[Uint8Array, RegExp]> = [
      [build({ a: { dtype: 'F32', shape: [2], bytes: f(2) } }, { header: (h) => ((h.a as { dtype: string }).dtype = 'F128') }), /unknown dtype "F128"/],
      [build({ a: { dtype: 'F32', shape: [3], bytes: f(2) } }), /needs 12 bytes/],
      [build({ a: { dtype: 'F32', shape: [2, -1], bytes: f(2) } }), /shape/],
      [build({ a: { dtype: 'F32', shape: [2], bytes: f(2) }, b: { dtype: 'F32', shape: [2], bytes: f(2) } }, { header: (h) => ((h.b as { data_offsets: number[] }).data_offsets = [4, 12]) }), /overlap/],
      [build({ a: { dtype: 'F32', shape: [2], bytes: f(2) }, b: { dtype: 'F32', shape: [1], bytes: f(2) } }, { header: (h) => ((h.b as { data_offsets: number[] }).data_offsets = [12, 16]) }), /\[8, 12\) before tensor 'b' belong to no tensor/],
      [build({ a: { dtype: 'F32', shape: [2], bytes: f(2) } }, { tail: new Uint8Array(4) }), /4 bytes after the last tensor/],
      [build({ a: { dtype: 'F32', shape: [2], bytes: f(2) } }, { header: (h) => ((h.a as { data_offsets: number[] }).data_offsets = [0, 80]) }), /needs 8 bytes|truncated/],
      [build({ a: { dtype: 'F32', shape: [2], bytes: f(2) } }, { header: (h) => ((h.a as { data_offsets: unknown }).data_offsets = [8, 0]) }), /data_offsets/],
      [build({ a: { dtype: 'F32', shape: [2], bytes: f(2) } }, { header: (h) => (h.__metadata__ = { n: 3 }) }), /__metadata__\['n'\] is a number/],
      [build({ a: { dtype: 'F32', shape: [2], bytes: f(2) } }, { header: (h) => (h.b = 'x') }), /tensor 'b' is described by "x"/],
      [Buffer.concat([Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('[]')]), /not valid UTF-8 JSON|not a JSON object/],
      [Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([0x7b, 0xff, 0xfe, 0x7d])]), /not valid UTF-8 JSON/],
      [Buffer.concat([Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{')]), /too small/],
      [Buffer.from([0, 0, 0, 0, 0, 0, 0, 0]), /too small/],
      [Buffer.from([1, 2, 3]), /too short/],
    ];
    for (const [bytes, pattern] of cases) {
      writeFileSync(file, bytes);
      expect(expectCode(() => kx.io.loadSafetensors(file), 'E_FORMAT').message).toMatch(pattern);
      expect(expectCode(() => kx.io.parseSafetensors(bytes), 'E_FORMAT').message).toMatch(pattern);
    }
    // An empty file set (header "{}") is valid.
    writeFileSync(file, build({}, { pad: true }));
    expect(kx.io.loadSafetensors(file)).toEqual({});
  });

  it('rejects truncated and corrupt files with E_FORMAT, missing files with E_IO', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'w.safetensors');
    const t = kx.tensor(new Float32Array(16), [4, 4]);
    const u = kx.tensor(new Int32Array([1, 2, 3]));
    await kx.io.saveSafetensors(file, { t, u });
    const good = readFileSync(file);
    const bad = path.join(dir, 'bad.safetensors');
    for (const cut of [good.length - 4, good.length - 13, 60, 9, 5, 0]) {
      writeFileSync(bad, good.subarray(0, cut));
      expect(expectCode(() => kx.io.loadSafetensors(bad), 'E_FORMAT').message).toMatch(/truncated|too short|JSON|no tensor/);
    }
    const corrupt = Buffer.from(good);
    corrupt.write('}}}', 8 + 1);
    writeFileSync(bad, corrupt);
    expectCode(() => kx.io.loadSafetensors(bad), 'E_FORMAT');
    const huge = Buffer.from(good);
    huge.writeBigUInt64LE(BigInt(1) << BigInt(40), 0);
    writeFileSync(bad, huge);
    expect(expectCode(() => kx.io.loadSafetensors(bad), 'E_FORMAT').message).toMatch(/exceeds/);
    // Random corruption anywhere: a clean load or E_FORMAT, never another failure.
    let seed = 12345;
    const before = kx.memory().tensors;
    for (let i = 0; i < 300; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const mutated = Buffer.from(good);
      const at = seed % Math.min(mutated.length, 200);
      mutated[at] = (mutated[at]! + 1 + ((seed >>> 16) % 255)) & 0xff;
      try {
        kx.dispose(kx.io.parseSafetensors(mutated).tensors);
      } catch (err) {
        expect((err as kx.KexueError).code, String(err)).toBe('E_FORMAT');
      }
    }
    expect(kx.memory().tensors).toBe(before);
    expect(expectCode(() => kx.io.loadSafetensors(path.join(dir, 'none.safetensors')), 'E_IO').message).toContain('none.safetensors');
    expectCode(() => kx.io.loadSafetensors(dir), 'E_IO');
    expectCode(() => kx.io.loadSafetensors(undefined as unknown as string), 'E_ARG');
    expectCode(() => kx.io.loadSafetensors(file, { device: 'tpu' }), 'E_ARG');
    kx.dispose([t, u]);
  });

  it('loads onto a requested device', async () => {
    const file = path.join(tmpDir(), 'd.safetensors');
    const t = kx.tensor([1, 2, 3]);
    await kx.io.saveSafetensors(file, { t });
    if (kx.cuda.isAvailable()) {
      const back = kx.io.loadSafetensors(file, { device: 'cuda' });
      expect(back.t!.device).toBe('cuda:0');
      expect(Array.from(back.t!.dataSync())).toEqual([1, 2, 3]);
      kx.dispose(back);
    } else {
      expectCode(() => kx.io.loadSafetensors(file, { device: 'cuda' }), 'E_NO_CUDA');
    }
    t.dispose();
  });

  it('keeps the previous file when a save fails', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'w.safetensors');
    const t = kx.tensor([1, 2, 3]);
    await kx.io.saveSafetensors(file, { t });
    const before = readFileSync(file);
    await expectCodeAsync(kx.io.saveSafetensors(file, { t, bad: 3 as unknown as kx.Tensor }), 'E_ARG');
    await expectCodeAsync(kx.io.saveSafetensors(file, { t }, { n: 3 as unknown as string }), 'E_ARG');
    await expectCodeAsync(kx.io.saveSafetensors(file, { __metadata__: t }), 'E_ARG');
    const gone = kx.tensor([1]);
    gone.dispose();
    await expectCodeAsync(kx.io.saveSafetensors(file, { t, gone }), 'E_DISPOSED');
    expect(readFileSync(file)).toEqual(before);
    await expectCodeAsync(kx.io.saveSafetensors(path.join(dir, 'no', 'such', 'dir.safetensors'), { t }), 'E_IO');
    // Writing over a directory fails at the rename: E_IO, and the temporary file is removed.
    mkdirSync(path.join(dir, 'sub'));
    writeFileSync(path.join(dir, 'sub', 'x'), 'x');
    await expectCodeAsync(kx.io.saveSafetensors(path.join(dir, 'sub'), { t }), 'E_IO');
    expect(readdirSync(dir).sort()).toEqual(['sub', 'w.safetensors']);
    t.dispose();
  });

  it('computes the SHA-256 of the whole file in the same pass as the load', async () => {
    const { createHash } = await import('node:crypto');
    const dir = tmpDir();
    const file = path.join(dir, 'h.safetensors');
    const a = kx.tensor([1, 2, 3], [3]);
    const b = kx.tensor([4, 5], [2], { dtype: 'int32' });
    await kx.io.saveSafetensors(file, { a, b }, { note: 'x' });
    const expected = createHash('sha256').update(readFileSync(file)).digest('hex');
    const r = kx.io.readSafetensors(file, { sha256: true });
    expect(r.sha256).toBe(expected);
    expect(r.metadata).toEqual({ note: 'x' });
    expect(Object.keys(r.tensors)).toEqual(['a', 'b']);
    kx.dispose(Object.values(r.tensors));
    // no tensors at all: the digest is that of the header alone, which is the whole file
    const empty = kx.io.serializeSafetensors({});
    expect(kx.io.parseSafetensors(empty, { sha256: true }).sha256).toBe(createHash('sha256').update(empty).digest('hex'));
    // a flipped byte inside a tensor's data: the header still validates, the digest differs
    const bytes = readFileSync(file);
    bytes[bytes.length - 9]! ^= 0x10;
    const c = kx.io.parseSafetensors(bytes, { sha256: true });
    expect(c.sha256).not.toBe(expected);
    kx.dispose(Object.values(c.tensors));
    expect(kx.io.readSafetensors(file).sha256).toBeUndefined();
    kx.dispose([a, b]);
  });

  it('finds the first NaN or ±Infinity of the floating tensors as it loads them (reported, not thrown)', () => {
    const cases: [kx.DType, number[], number, number][] = [
      ['float32', [1, NaN, 3], 1, NaN],
      ['float32', [1, 2, -Infinity], 2, -Infinity],
      ['float16', [0, 65504, Infinity], 2, Infinity],
      ['float16', [NaN, 1, 1], 0, NaN],
      ['bfloat16', [1, -Infinity, NaN], 1, -Infinity],
      ['bfloat16', [3e38, 1, NaN], 2, NaN],
    ];
    for (const [dtype, values, index, value] of cases) {
      const t = kx.tensor(values, [3], { dtype });
      const ok = kx.tensor([1, 2], [2], { dtype });
      const bytes = kx.io.serializeSafetensors({ a_ok: ok, b_bad: t, c_int: kx.tensor([7], [1], { dtype: 'int32' }) });
      const r = kx.io.parseSafetensors(bytes, { findNonFinite: true });
      expect(r.nonFinite, dtype).toEqual({ tensor: 'b_bad', index, value });
      kx.dispose([...Object.values(r.tensors), t, ok]);
    }
    // finite floats (the largest ones included), integers and halves' largest values: nothing found
    const fine = { f: kx.tensor([3.4028234663852886e38, -1, 0], [3]), h: kx.tensor([65504, -65504], [2], { dtype: 'float16' }), i: kx.tensor([-1], [1], { dtype: 'int32' }) };
    const r = kx.io.parseSafetensors(kx.io.serializeSafetensors(fine), { findNonFinite: true });
    expect(r.nonFinite).toBeUndefined();
    kx.dispose([...Object.values(r.tensors), ...Object.values(fine)]);
  });
});
