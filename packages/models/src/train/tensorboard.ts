/**
 * TensorBoard event files beside metrics.jsonl, so that `tensorboard --logdir runs` shows a run's
 * curves: an observer of the run's events (train/events.ts) that writes
 * `RUN/events.out.tfevents.<seconds>.<host>`.
 *
 * The file is what TensorFlow's summary writers produce: TFRecord framing (uint64 length, masked
 * CRC-32C of the length, the bytes, masked CRC-32C of the bytes; little-endian) around `Event`
 * protobufs (tensorflow/core/util/event.proto), the first one `file_version: "brain.Event:2"`, then
 * one event per logging step (`train/loss`, `train/lr`, `train/grad_norm`, `train/tokens_per_s`,
 * and any other number of the metrics record) and one per evaluation (`eval/<metric>`), each a
 * `Summary` of `simple_value` scalars at the update's step, wall time in seconds.
 *
 * Each process writes its own file (TensorBoard reads every file of a directory, in name order, and
 * the names sort by time). A resumed run's file starts with a `SessionLog` START at the first step
 * after its checkpoint, which tells TensorBoard to drop what the interrupted process wrote after
 * that checkpoint, as the run drops those records from metrics.jsonl. Every record goes to the
 * file in one write (a killed process leaves whole records), and the file is fsynced at each
 * logging step, evaluation and the end, never at every step.
 */
import { closeSync, fsyncSync, openSync, readdirSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';

import { crc32c } from '@node-rs/crc32';
import protobuf from 'protobufjs';

import { ioError } from '@kexue/core-cuda';

import type { TrainEvent, TrainObserver } from './events.js';

/** The few messages of TensorFlow's event.proto and summary.proto that scalar curves need. */
const PROTO = `
syntax = "proto3";
package tensorboard;
message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what {
    string file_version = 3;
    Summary summary = 5;
    SessionLog session_log = 6;
  }
}
message SessionLog {
  enum SessionStatus { STATUS_UNSPECIFIED = 0; START = 1; STOP = 2; CHECKPOINT = 3; }
  SessionStatus status = 1;
  string checkpoint_path = 2;
  string msg = 3;
}
message Summary {
  message Value {
    string tag = 1;
    oneof value { float simple_value = 2; }
  }
  repeated Value value = 1;
}
`;

const EventType = protobuf.parse(PROTO, { keepCase: true }).root.lookupType('tensorboard.Event');

/** What the file_version event says: TensorBoard reads version 2 files with SessionLog restarts. */
export const TFEVENTS_FILE_VERSION = 'brain.Event:2';
/** Event file names start with this. */
export const TFEVENTS_PREFIX = 'events.out.tfevents.';

/** One event to write (field names as in event.proto). */
export interface TfEvent {
  wall_time: number;
  step: number;
  file_version?: string;
  summary?: { value: { tag: string; simple_value: number }[] };
  session_log?: { status: 1 | 2 | 3; msg?: string };
}

/** TFRecord's checksum: CRC-32C rotated right by 15 bits plus a constant (mod 2^32). */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = crc32c(bytes);
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
}

/** One TFRecord: uint64 length, masked CRC of those 8 bytes, the data, masked CRC of the data. */
export function tfRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(16 + data.length);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

/** The serialized Event protobuf. */
export function encodeEvent(event: TfEvent): Uint8Array {
  return EventType.encode(EventType.fromObject(event)).finish();
}

/**
 * An event file of its own in `dir` (created when constructed, the file_version event first).
 * Records are written whole, one write each; `sync()` makes them durable.
 */
export class EventFileWriter {
  readonly file: string;
  private fd: number | null;

  constructor(dir: string, options: { host?: string; now?: () => number } = {}) {
    const host = options.host ?? hostname();
    const now = options.now ?? Date.now;
    // names sort by their seconds: a file must sort after the files already there (a resumed run
    // started within the same second as the run it continues), so take the next free second
    let seconds = Math.floor(now() / 1000);
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch (err) {
      throw ioError(`cannot write TensorBoard events in ${dir}`, err);
    }
    for (const name of names) {
      const m = /^events\.out\.tfevents\.(\d+)\./.exec(name);
      if (m) seconds = Math.max(seconds, Number(m[1]) + 1);
    }
    for (;;) {
      const file = path.join(dir, `${TFEVENTS_PREFIX}${String(seconds).padStart(10, '0')}.${host}`);
      try {
        this.fd = openSync(file, 'wx');
        this.file = file;
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
          seconds++;
          continue;
        }
        throw ioError(`cannot create ${file}`, err);
      }
    }
    this.write({ wall_time: now() / 1000, step: 0, file_version: TFEVENTS_FILE_VERSION });
  }

  /** Appends one event as one record. */
  write(event: TfEvent): void {
    if (this.fd === null) throw new Error(`EventFileWriter: ${this.file} is closed`);
    const record = tfRecord(encodeEvent(event));
    try {
      let done = 0;
      while (done < record.length) done += writeSync(this.fd, record, done);
    } catch (err) {
      throw ioError(`cannot write ${this.file}`, err);
    }
  }

  /** Scalars at a step: one event whose summary holds them all. */
  scalars(step: number, values: Record<string, number>, wallTime: number): void {
    const value = Object.entries(values).map(([tag, v]) => ({ tag, simple_value: v }));
    if (value.length > 0) this.write({ wall_time: wallTime, step, summary: { value } });
  }

  /** Flushes the file to the disk. */
  sync(): void {
    if (this.fd === null) return;
    try {
      fsyncSync(this.fd);
    } catch (err) {
      throw ioError(`cannot sync ${this.file}`, err);
    }
  }

  /** Syncs and closes the file (again: nothing). */
  close(): void {
    if (this.fd === null) return;
    try {
      this.sync();
    } finally {
      closeSync(this.fd);
      this.fd = null;
    }
  }
}

/** Keys of a train record that are not curves. */
const NOT_SCALARS = new Set(['kind', 'step', 'epoch', 'elapsed_s']);

/** The numbers of a record, tagged `prefix/key`. */
function numbers(prefix: string, record: Record<string, unknown>, skip: ReadonlySet<string>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, value] of Object.entries(record)) if (typeof value === 'number' && !skip.has(key)) out[`${prefix}/${key}`] = value;
  return out;
}

/** The observer: a TrainObserver with the file it writes (null before the first event) and close(). */
export interface TensorBoardObserver extends TrainObserver {
  /** The event file last opened (null until the first event). */
  readonly file: string | null;
  /** Syncs and closes the file (the 'done' event does it too; a later event opens a new file). */
  close(): void;
}

/**
 * An observer writing the run's curves to a TensorBoard event file in `runDir` (which must exist
 * when the first event arrives: the file is created then). `log` events give `train/<key>` for
 * every number of the metrics record (loss, lr, grad_norm, tokens_per_s, loss_scale, …; not step,
 * epoch or elapsed_s); `eval` events `eval/<metric>`; `resume` a SessionLog START at the step after
 * the checkpoint; `done` closes the file. Other events (step, notice) are not written.
 */
export function tensorboardObserver(runDir: string, options: { host?: string; now?: () => number } = {}): TensorBoardObserver {
  const now = options.now ?? Date.now;
  let writer: EventFileWriter | null = null;
  let file: string | null = null;
  const open = (): EventFileWriter => {
    if (writer === null) {
      writer = new EventFileWriter(runDir, options);
      file = writer.file;
    }
    return writer;
  };

  const observer = (event: TrainEvent): void => {
    switch (event.type) {
      case 'start':
        open().sync();
        break;
      case 'resume': {
        const w = open();
        w.write({ wall_time: now() / 1000, step: event.step + 1, session_log: { status: 1, msg: `resumed after step ${event.step}` } });
        w.sync();
        break;
      }
      case 'log': {
        const w = open();
        w.scalars(event.record.step, numbers('train', event.record, NOT_SCALARS), now() / 1000);
        w.sync();
        break;
      }
      case 'eval': {
        const w = open();
        w.scalars(event.step, numbers('eval', event.metrics, new Set()), now() / 1000);
        w.sync();
        break;
      }
      case 'done':
        observer.close();
        break;
      default:
        // step (every update: no per-step writes), notice, and anything newer: not curves
        break;
    }
  };
  observer.close = (): void => {
    const w = writer;
    writer = null;
    w?.close();
  };
  Object.defineProperty(observer, 'file', { get: () => file, enumerable: true });
  return observer as TensorBoardObserver;
}
