/**
 * A restricted unpickler: it reads the Python pickle opcodes that plain data needs (protocols
 * 2–5: numbers, strings, bytes, lists, tuples, dicts, memo, marks, frames) and nothing else. It
 * executes nothing: a GLOBAL (or STACK_GLOBAL) is looked up in the caller's allow-list of
 * `PickleGlobal`s, whose behaviour under REDUCE, BUILD and persistent ids is TypeScript written
 * by us; any other global, and every opcode that instantiates classes (INST, OBJ, NEWOBJ,
 * NEWOBJ_EX), uses the extension registry (EXT*) or is text-protocol only, is E_FORMAT naming it.
 * Malformed streams (truncated, stack underflow, unknown memo keys, values of the wrong kind)
 * are E_FORMAT too.
 */
import { FormatError } from '../errors.js';

/** A key a dict may have (Python's hashable scalars). */
export type PickleKey = string | number | bigint | boolean | null;

/**
 * A value the unpickler produces. Tuples are frozen arrays, lists are arrays; dicts are
 * PickleDicts; anything else is made by an allowed global (a PickleObject).
 */
export type PickleValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PickleValue[]
  | readonly PickleValue[]
  | PickleDict
  | PickleGlobal
  | PickleObject;

/** Base of the objects that allowed globals make (tensors, storages...). */
export abstract class PickleObject {}

/** A dict (also collections.OrderedDict); `state` holds what BUILD set on it (e.g. `_metadata`). */
export class PickleDict {
  readonly entries = new Map<PickleKey, PickleValue>();
  state: PickleValue | undefined;
  constructor(readonly className = 'dict') {}
}

/** An allowed global: what REDUCE with it computes (TypeScript, never Python). */
export class PickleGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
    /** The result of calling it with `args`; absent when it may not be called. */
    readonly call?: (args: readonly PickleValue[], where: string) => PickleValue,
  ) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

export interface UnpickleOptions {
  /** Names the stream in error messages. */
  name: string;
  /** The allowed globals, keyed by "module.name". */
  globals: ReadonlyMap<string, PickleGlobal>;
  /** Resolves a persistent id (BINPERSID); absent: persistent ids are refused. */
  persistentLoad?: (pid: PickleValue, where: string) => PickleValue;
  /** Applies BUILD's state to an object the globals made; absent or false: BUILD is refused. */
  build?: (target: PickleValue, state: PickleValue, where: string) => boolean;
}

/** Marks the start of a variable-length group on the stack. */
const MARK = Symbol('mark');
type Slot = PickleValue | typeof MARK;

const OPCODE_NAMES: Record<number, string> = {
  0x63: 'GLOBAL', 0x93: 'STACK_GLOBAL', 0x69: 'INST', 0x6f: 'OBJ', 0x81: 'NEWOBJ', 0x92: 'NEWOBJ_EX',
  0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x50: 'PERSID', 0x49: 'INT', 0x4c: 'LONG', 0x46: 'FLOAT', 0x53: 'STRING',
  0x56: 'UNICODE', 0x70: 'PUT', 0x67: 'GET', 0x8f: 'EMPTY_SET', 0x90: 'ADDITEMS', 0x91: 'FROZENSET',
  0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER', 0x55: 'SHORT_BINSTRING', 0x54: 'BINSTRING', 0x64: 'DICT', 0x6c: 'LIST',
};

function isKey(v: PickleValue): v is PickleKey {
  return v === null || ['string', 'number', 'bigint', 'boolean'].includes(typeof v);
}

/** Unpickles `bytes` under `options`' allow-list. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions): PickleValue {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const stack: Slot[] = [];
  const memo = new Map<number, PickleValue>();
  let pos = 0;
  let op = 0;
  let opAt = 0;

  const fail = (msg: string): never => {
    throw new FormatError(`${options.name}: pickle byte ${opAt}: ${msg}`);
  };
  const where = (): string => `${options.name}: pickle byte ${opAt}`;
  const need = (n: number): number => {
    if (n < 0 || pos + n > bytes.length) fail(`truncated (an opcode needs ${n} more bytes, ${bytes.length - pos} left)`);
    const at = pos;
    pos += n;
    return at;
  };
  const pop = (): PickleValue => {
    if (stack.length === 0) fail('stack underflow');
    const v = stack.pop()!;
    if (v === MARK) fail('unexpected mark');
    return v as PickleValue;
  };
  const top = (): PickleValue => {
    const v = stack[stack.length - 1];
    if (v === undefined) fail('stack underflow');
    if (v === MARK) fail('unexpected mark');
    return v as PickleValue;
  };
  const popMark = (): PickleValue[] => {
    for (let i = stack.length - 1; i >= 0; i--) {
      if (stack[i] === MARK) {
        const items = stack.slice(i + 1) as PickleValue[];
        stack.length = i;
        return items;
      }
    }
    return fail('no mark on the stack');
  };
  const text = (at: number, n: number): string => {
    try {
      return utf8.decode(bytes.subarray(at, at + n));
    } catch {
      return fail('a string is not valid UTF-8');
    }
  };
  const readLine = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail('truncated (no end of line)');
    const line = text(pos, end - pos);
    pos = end + 1;
    return line;
  };
  const dictOf = (v: PickleValue, opName: string): PickleDict => {
    if (!(v instanceof PickleDict)) fail(`${opName} on a ${describe(v)}, not a dict`);
    return v as PickleDict;
  };
  const listOf = (v: PickleValue, opName: string): PickleValue[] => {
    if (!Array.isArray(v) || Object.isFrozen(v)) fail(`${opName} on a ${describe(v)}, not a list`);
    return v as PickleValue[];
  };
  const setItems = (d: PickleDict, items: PickleValue[]): void => {
    if (items.length % 2 !== 0) fail('SETITEMS with an odd number of values');
    for (let i = 0; i < items.length; i += 2) {
      const k = items[i]!;
      if (!isKey(k)) fail(`a dict key is a ${describe(k)}`);
      d.entries.set(k as PickleKey, items[i + 1]!);
    }
  };
  const lookupGlobal = (module: string, name: string): PickleGlobal => {
    const g = options.globals.get(`${module}.${name}`);
    if (!g) fail(`global ${module}.${name} is not allowed (only the globals of a tensor state dict are; nothing is executed)`);
    return g!;
  };
  const memoGet = (key: number): PickleValue => {
    if (!memo.has(key)) fail(`memo key ${key} was never stored`);
    return memo.get(key)!;
  };

  for (;;) {
    opAt = pos;
    op = bytes[need(1)]!;
    switch (op) {
      case 0x80: // PROTO
        if (bytes[need(1)]! > 5) fail(`pickle protocol ${bytes[pos - 1]} is newer than 5`);
        break;
      case 0x95: // FRAME: a length prefix only
        need(8);
        break;
      case 0x2e: // STOP
        if (stack.length !== 1) fail(`STOP with ${stack.length} values on the stack`);
        return pop();
      case 0x28: // MARK
        stack.push(MARK);
        break;
      case 0x30: // POP
        if (stack.length === 0) fail('stack underflow');
        stack.pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        stack.push(dv.getInt32(need(4), true));
        break;
      case 0x4b: // BININT1
        stack.push(bytes[need(1)]!);
        break;
      case 0x4d: // BININT2
        stack.push(dv.getUint16(need(2), true));
        break;
      case 0x8a: // LONG1
      case 0x8b: { // LONG4
        const n = op === 0x8a ? bytes[need(1)]! : dv.getInt32(need(4), true);
        if (n > 64) fail(`an integer of ${n} bytes is too large`);
        const at = need(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[at + i]!);
        if (n > 0 && bytes[at + n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        stack.push(dv.getFloat64(need(8), false));
        break;
      case 0x58: { // BINUNICODE
        const n = dv.getUint32(need(4), true);
        stack.push(text(need(n), n));
        break;
      }
      case 0x8c: { // SHORT_BINUNICODE
        const n = bytes[need(1)]!;
        stack.push(text(need(n), n));
        break;
      }
      case 0x8d: { // BINUNICODE8
        const n = Number(dv.getBigUint64(need(8), true));
        stack.push(text(need(n), n));
        break;
      }
      case 0x43: // SHORT_BINBYTES
      case 0x42: // BINBYTES
      case 0x8e: { // BINBYTES8
        const n = op === 0x43 ? bytes[need(1)]! : op === 0x42 ? dv.getUint32(need(4), true) : Number(dv.getBigUint64(need(8), true));
        const at = need(n);
        stack.push(bytes.slice(at, at + n));
        break;
      }
      case 0x7d: // EMPTY_DICT
        stack.push(new PickleDict());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(Object.freeze([]));
        break;
      case 0x74: // TUPLE
        stack.push(Object.freeze(popMark()));
        break;
      case 0x85: // TUPLE1
        stack.push(Object.freeze([pop()]));
        break;
      case 0x86: { // TUPLE2
        const b = pop();
        stack.push(Object.freeze([pop(), b]));
        break;
      }
      case 0x87: { // TUPLE3
        const c = pop();
        const b = pop();
        stack.push(Object.freeze([pop(), b, c]));
        break;
      }
      case 0x71: // BINPUT
        memo.set(bytes[need(1)]!, top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(dv.getUint32(need(4), true), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
        stack.push(memoGet(bytes[need(1)]!));
        break;
      case 0x6a: // LONG_BINGET
        stack.push(memoGet(dv.getUint32(need(4), true)));
        break;
      case 0x61: { // APPEND
        const v = pop();
        listOf(top(), 'APPEND').push(v);
        break;
      }
      case 0x65: { // APPENDS
        const items = popMark();
        listOf(top(), 'APPENDS').push(...items);
        break;
      }
      case 0x73: { // SETITEM
        const v = pop();
        const k = pop();
        setItems(dictOf(top(), 'SETITEM'), [k, v]);
        break;
      }
      case 0x75: { // SETITEMS
        const items = popMark();
        setItems(dictOf(top(), 'SETITEMS'), items);
        break;
      }
      case 0x63: { // GLOBAL "module\nname\n": looked up, never imported
        const module = readLine();
        const name = readLine();
        stack.push(lookupGlobal(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(lookupGlobal(module as string, name as string));
        break;
      }
      case 0x52: { // REDUCE: only our own implementation of an allowed global runs
        const args = pop();
        const fn = pop();
        if (!(fn instanceof PickleGlobal)) fail(`REDUCE calls a ${describe(fn)}, not an allowed global`);
        const g = fn as PickleGlobal;
        if (!g.call) fail(`${g.qualifiedName} may not be called`);
        if (!Array.isArray(args)) fail(`REDUCE arguments are a ${describe(args)}, not a tuple`);
        stack.push(g.call!(args as PickleValue[], where()));
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!options.persistentLoad) fail('persistent ids are not allowed here');
        stack.push(options.persistentLoad!(pid, where()));
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        const target = top();
        if (!options.build || !options.build(target, state, where())) fail(`BUILD on a ${describe(target)} is not allowed`);
        break;
      }
      default:
        fail(`opcode ${OPCODE_NAMES[op] ?? `0x${op.toString(16).padStart(2, '0')}`} is not allowed (the reader accepts only plain data and allowed globals)`);
    }
  }
}

/** A short description of a value's kind, for messages. */
export function describe(v: PickleValue | undefined): string {
  if (v === null) return 'None';
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return Object.isFrozen(v) ? 'tuple' : 'list';
  if (v instanceof Uint8Array) return 'bytes';
  if (v instanceof PickleDict) return v.className;
  if (v instanceof PickleGlobal) return `global ${v.qualifiedName}`;
  if (v instanceof PickleObject) return v.constructor.name;
  return typeof v;
}
