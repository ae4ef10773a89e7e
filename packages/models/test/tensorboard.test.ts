/**
 * TensorBoard event files: written through the run observer, read back here at the record level
 * with a reader of its own (TFRecord length framing, masked CRC-32C from @node-rs/crc32, the
 * Event/Summary protobufs declared again from TensorFlow's event.proto/summary.proto).
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { crc32c } from '@node-rs/crc32';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';

import { tensorboardObserver, type MetricsRecord, type TrainEvent } from '@kexue/models';
import { useTempDir } from '../../core-cuda/test/helpers.js';

// the messages as TensorFlow declares them (field numbers from event.proto and summary.proto)
const root = protobuf.Root.fromJSON({
  nested: {
    Event: {
      oneofs: { what: { oneof: ['file_version', 'summary', 'session_log'] } },
      fields: {
        wall_time: { type: 'double', id: 1 },
        step: { type: 'int64', id: 2 },
        file_version: { type: 'string', id: 3 },
        summary: { type: 'Summary', id: 5 },
        session_log: { type: 'SessionLog', id: 6 },
      },
    },
    SessionLog: { fields: { status: { type: 'int32', id: 1 }, checkpoint_path: { type: 'string', id: 2 }, msg: { type: 'string', id: 3 } } },
    Summary: { fields: { value: { rule: 'repeated', type: 'Value', id: 1 } } },
    Value: { fields: { tag: { type: 'string', id: 1 }, simple_value: { type: 'float', id: 2 } } },
  },
});
const Event = root.lookupType('Event');

interface Decoded {
  wall_time: number;
  step: number;
  file_version?: string;
  summary?: { value: { tag: string; simple_value: number }[] };
  session_log?: { status: number; msg: string };
}

const mask = (crc: number) => ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) % 2 ** 32;

/** The records of a TFRecord file; throws on a bad length or CRC. */
function readRecords(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (at + 12 > bytes.length) throw new Error(`truncated header at ${at}`);
    const header = bytes.subarray(at, at + 8);
    if (bytes.readUInt32LE(at + 8) !== mask(crc32c(header))) throw new Error(`bad length CRC at ${at}`);
    const n = Number(bytes.readBigUInt64LE(at));
    if (at + 16 + n > bytes.length) throw new Error(`truncated record at ${at}`);
    const data = bytes.subarray(at + 12, at + 12 + n);
    if (bytes.readUInt32LE(at + 12 + n) !== mask(crc32c(data))) throw new Error(`bad data CRC at ${at}`);
    out.push(data);
    at += 16 + n;
  }
  return out;
}

/** An Event as a plain object (proto3 leaves a zero step off the wire: it reads as 0). */
function decode(data: Uint8Array): Decoded {
  const e = Event.toObject(Event.decode(data), { longs: Number, enums: Number, defaults: false, oneofs: false }) as Decoded;
  return { ...e, step: e.step ?? 0 };
}

const scalars = (events: Decoded[]) =>
  events.filter((e) => e.summary).flatMap((e) => e.summary!.value.map((v) => ({ step: e.step, tag: v.tag, value: v.simple_value })));

const scratch = useTempDir('kexue-tb-');
/** A fresh directory for one test. */
const tempDir = (): string => mkdtempSync(path.join(scratch, 'test-'));
const eventFiles = (dir: string) => readdirSync(dir).filter((n) => n.startsWith('events.out.tfevents.')).sort();

const start = (runDir: string): TrainEvent => ({
  type: 'start', task: 'ner', runDir, device: 'cpu', precision: null, model: 'roformer 2x128 + egp', parameters: 10, updates: 40, data: { train: 8, dev: 2, unit: 'records' },
});
const log = (step: number, loss: number, extra: Partial<MetricsRecord> = {}): TrainEvent => ({
  type: 'log', total: 40,
  record: { kind: 'train', step, epoch: 0, loss, lr: 0.002 * (1 - step / 40), grad_norm: 1.5 / step, tokens_per_s: 1234.5 + step, elapsed_s: step / 10, ...extra },
});
const evalAt = (step: number, f1: number): TrainEvent => ({ type: 'eval', step, metrics: { precision: f1 + 0.1, recall: f1 - 0.1, f1 }, seconds: 0.5, best: true });
const stepEvent = (step: number): TrainEvent => ({ type: 'step', step, total: 40, epoch: 0, loss: 1, tokensPerSecond: 1, elapsedMs: 1, etaMs: 1 });

describe('TensorBoard event files', () => {
  it('writes file_version first, then train and eval scalars at their steps, in TFRecord framing', () => {
    const dir = tempDir();
    let clock = 1_700_000_000_123;
    const tb = tensorboardObserver(dir, { host: 'testhost', now: () => clock });
    expect(tb.file).toBeNull();
    tb(start(dir));
    for (let step = 1; step <= 20; step++) {
      clock += 1000;
      tb(stepEvent(step));
      if (step % 10 === 0) tb(log(step, 3 / step));
    }
    tb(evalAt(20, 0.4805));
    tb({ type: 'done', step: 20 });

    expect(eventFiles(dir)).toEqual(['events.out.tfevents.1700000000.testhost']);
    expect(tb.file).toBe(path.join(dir, 'events.out.tfevents.1700000000.testhost'));
    const events = readRecords(readFileSync(tb.file!)).map(decode);
    expect(events[0]).toEqual({ wall_time: 1_700_000_000.123, step: 0, file_version: 'brain.Event:2' });
    expect(events).toHaveLength(4); // file_version, two logging steps, one evaluation: no per-step events
    expect(events.slice(1).map((e) => [e.step, e.wall_time])).toEqual([
      [10, 1_700_000_010.123],
      [20, 1_700_000_020.123],
      [20, 1_700_000_020.123],
    ]);
    const f = Math.fround;
    expect(scalars(events)).toEqual([
      { step: 10, tag: 'train/loss', value: f(0.3) },
      { step: 10, tag: 'train/lr', value: f(0.002 * 0.75) },
      { step: 10, tag: 'train/grad_norm', value: f(0.15) },
      { step: 10, tag: 'train/tokens_per_s', value: f(1244.5) },
      { step: 20, tag: 'train/loss', value: f(0.15) },
      { step: 20, tag: 'train/lr', value: f(0.002 * 0.5) },
      { step: 20, tag: 'train/grad_norm', value: f(0.075) },
      { step: 20, tag: 'train/tokens_per_s', value: f(1254.5) },
      { step: 20, tag: 'eval/precision', value: f(0.5805) },
      { step: 20, tag: 'eval/recall', value: f(0.3805) },
      { step: 20, tag: 'eval/f1', value: f(0.4805) },
    ]);
  });

  it('detects a corrupted byte anywhere by the masked CRC-32C', () => {
    const dir = tempDir();
    const tb = tensorboardObserver(dir, { host: 'h' });
    tb(start(dir));
    tb(log(5, 1.25, { loss_scale: 65536, skipped_steps: 1 }));
    tb.close();
    const good = readFileSync(tb.file!);
    const events = readRecords(good).map(decode);
    // mixed-precision records add their loss scale and skipped updates
    expect(scalars(events).map((s) => s.tag)).toEqual(['train/loss', 'train/lr', 'train/grad_norm', 'train/tokens_per_s', 'train/loss_scale', 'train/skipped_steps']);
    // flip one bit of every byte in turn: the length, either checksum or the data
    for (let i = 0; i < good.length; i++) {
      const bad = Buffer.from(good);
      bad[i]! ^= 0x10;
      expect(() => readRecords(bad), `byte ${i}`).toThrow(/bad .*CRC|truncated/);
    }
  });

  it('leaves whole records without close; a resumed run writes a new file that sorts after, starting with SessionLog START', () => {
    const dir = tempDir();
    const clock = 1_700_000_000_000;
    const first = tensorboardObserver(dir, { host: 'h', now: () => clock });
    first(start(dir));
    first(log(10, 1));
    first(log(20, 0.5));
    // the process dies here: no done, no close; what is on disk reads as whole records
    const written = readFileSync(first.file!);
    expect(readRecords(written).map(decode).map((e) => e.step)).toEqual([0, 10, 20]);

    // resumed from the checkpoint at step 10 within the same second
    const second = tensorboardObserver(dir, { host: 'h', now: () => clock + 500 });
    second(start(dir));
    second({ type: 'resume', step: 10, epoch: 0, index: 80, droppedRecords: 1 });
    second(log(20, 0.4));
    second({ type: 'done', step: 20 });
    expect(eventFiles(dir)).toEqual(['events.out.tfevents.1700000000.h', 'events.out.tfevents.1700000001.h']);
    expect(second.file).toBe(path.join(dir, 'events.out.tfevents.1700000001.h'));
    const events = readRecords(readFileSync(second.file!)).map(decode);
    expect(events[0]!.file_version).toBe('brain.Event:2');
    // TensorBoard drops the data of earlier files at steps >= 11 (what the dead process wrote after the checkpoint)
    expect(events[1]).toMatchObject({ step: 11, session_log: { status: 1 } });
    expect(scalars(events).filter((s) => s.tag === 'train/loss')).toEqual([{ step: 20, tag: 'train/loss', value: Math.fround(0.4) }]);
    first.close();
  });

  it('fails with E_IO naming the directory when it cannot write there', () => {
    const dir = tempDir();
    const notDir = path.join(dir, 'file');
    writeFileSync(notDir, '');
    const tb = tensorboardObserver(notDir);
    expect(() => tb(start(notDir))).toThrow(expect.objectContaining({ code: 'E_IO', message: expect.stringContaining(notDir) }));
  });
});
