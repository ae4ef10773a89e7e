/**
 * PyTorch zip checkpoints (`torch.save` since 1.6, e.g. pytorch_model.bin): a zip whose
 * `<prefix>/data.pkl` is a pickle of the saved object, whose tensors refer by persistent id to
 * storages stored as `<prefix>/data/<key>` (raw little-endian elements).
 *
 * The pickle is read by the restricted unpickler (./pickle.ts) with only the globals a state dict
 * needs: collections.OrderedDict, torch._utils._rebuild_tensor(_v2), _rebuild_parameter(_with_state)
 * and the storage types; nothing is executed, and anything else (a pickled module, numpy arrays,
 * os.system...) is E_FORMAT naming it. Tensors are views of storages (offset, shape, strides);
 * each is copied out contiguous, so a transposed or sliced tensor saved as is loads with its own
 * values, and tensors sharing a storage are each copied. dtypes convert as in ./elements.ts
 * (int64 → int32 with a range check, float64 → float32, bool → uint8).
 *
 * Names: nested dicts and lists are flattened with '.', so {'model': {'w': t}, 'opt': [t2]} gives
 * 'model.w' and 'opt.0'; a bare tensor is named ''. Entries that are not tensors (an epoch
 * number, a config) are in `readTorch(...).value`.
 */
import { resolveDevice } from '../device.js';
import { tensor } from '../creation.js';
import { FormatError } from '../errors.js';
import { Tensor } from '../tensor.js';
import { FILE_DTYPES, decodeElements, type FileDType } from './elements.js';
import { PickleDict, PickleGlobal, PickleObject, describe, unpickle, type PickleValue } from './pickle.js';
import type { LoadOptions } from './safetensors.js';
import { withFile, type ByteSource } from './source.js';
import { ZipReader, type ZipEntry } from './zip.js';

const STORAGE_TYPES: Record<string, FileDType> = {
  FloatStorage: 'F32',
  DoubleStorage: 'F64',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

/** A storage named by a persistent id: a zip entry of `numel` elements of `dtype`. */
class StorageRef extends PickleObject {
  constructor(readonly key: string, readonly dtype: FileDType, readonly numel: number) {
    super();
  }
}

/** A tensor as the pickle describes it: a strided view of a storage. */
class TensorRef extends PickleObject {
  tensor: Tensor | undefined;
  constructor(readonly storage: StorageRef, readonly offset: number, readonly shape: number[], readonly stride: number[]) {
    super();
  }
}

/** The storage-type globals: markers inside persistent ids, never callable. */
class StorageType extends PickleGlobal {
  constructor(name: string, readonly dtype: FileDType) {
    super('torch', name);
  }
}

function fail(where: string, msg: string): never {
  throw new FormatError(`${where}: ${msg}`);
}

function intList(v: PickleValue, what: string, where: string): number[] {
  if (!Array.isArray(v) || v.some((d) => typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)) {
    fail(where, `${what} is ${describe(v)} ${JSON.stringify(v)}, not a tuple of non-negative integers`);
  }
  return [...(v as number[])];
}

function rebuildTensor(args: readonly PickleValue[], where: string, name: string): TensorRef {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof StorageRef)) fail(where, `${name}: the storage is a ${describe(storage)}`);
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) fail(where, `${name}: bad storage offset ${String(offset)}`);
  const shape = intList(size!, `${name}: the size`, where);
  const strides = intList(stride!, `${name}: the stride`, where);
  if (shape.length !== strides.length) fail(where, `${name}: size [${shape}] and stride [${strides}] have different lengths`);
  let numel = 1;
  let last = offset as number;
  for (let i = 0; i < shape.length; i++) {
    numel *= shape[i]!;
    if (shape[i]! > 0) last += (shape[i]! - 1) * strides[i]!;
  }
  if (!Number.isSafeInteger(last)) fail(where, `${name}: the view overflows`);
  if (numel > 0 && last >= (storage as StorageRef).numel) {
    fail(where, `${name}: a view (offset ${offset}, size [${shape}], stride [${strides}]) reaches element ${last} of a storage of ${(storage as StorageRef).numel}`);
  }
  return new TensorRef(storage as StorageRef, offset as number, shape, strides);
}

function tensorArg(v: PickleValue, where: string, name: string): TensorRef {
  if (!(v instanceof TensorRef)) fail(where, `${name}: expected a tensor, got a ${describe(v)}`);
  return v as TensorRef;
}

/** The globals a state dict needs, and what each does when called. */
function allowedGlobals(): Map<string, PickleGlobal> {
  const list: PickleGlobal[] = [
    new PickleGlobal('collections', 'OrderedDict', (args, where) => {
      const d = new PickleDict('OrderedDict');
      if (args.length > 1 || (args.length === 1 && !(Array.isArray(args[0]) && args[0].length === 0))) {
        fail(where, 'collections.OrderedDict is only rebuilt empty (then filled by SETITEMS)');
      }
      return d;
    }),
    new PickleGlobal('torch._utils', '_rebuild_tensor_v2', (args, where) => {
      if (args.length < 6 || args.length > 7) fail(where, `_rebuild_tensor_v2 takes 6 or 7 arguments, got ${args.length}`);
      return rebuildTensor(args, where, '_rebuild_tensor_v2');
    }),
    new PickleGlobal('torch._utils', '_rebuild_tensor', (args, where) => {
      if (args.length !== 4) fail(where, `_rebuild_tensor takes 4 arguments, got ${args.length}`);
      return rebuildTensor(args, where, '_rebuild_tensor');
    }),
    new PickleGlobal('torch._utils', '_rebuild_parameter', (args, where) => {
      if (args.length !== 3) fail(where, `_rebuild_parameter takes 3 arguments, got ${args.length}`);
      return tensorArg(args[0]!, where, '_rebuild_parameter');
    }),
    new PickleGlobal('torch._utils', '_rebuild_parameter_with_state', (args, where) => {
      if (args.length !== 4) fail(where, `_rebuild_parameter_with_state takes 4 arguments, got ${args.length}`);
      return tensorArg(args[0]!, where, '_rebuild_parameter_with_state');
    }),
    ...Object.entries(STORAGE_TYPES).map(([name, dtype]) => new StorageType(name, dtype)),
  ];
  return new Map(list.map((g) => [g.qualifiedName, g]));
}

/** Persistent ids ('storage', StorageType, key, location, numel), one StorageRef per key. */
function storageLoader(zip: ZipReader, prefix: string): (pid: PickleValue, where: string) => PickleValue {
  const storages = new Map<string, StorageRef>();
  return (pid, where) => {
    if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage') fail(where, `persistent id ${describe(pid)} is not a ('storage', type, key, location, numel) tuple`);
    const [, type, key, location, numel] = pid as PickleValue[];
    if (!(type instanceof StorageType)) fail(where, `storage type is a ${describe(type!)}`);
    if (typeof key !== 'string' || typeof location !== 'string') fail(where, 'storage key and location must be strings');
    if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) fail(where, `storage '${String(key)}' has a bad element count ${String(numel)}`);
    const dtype = (type as StorageType).dtype;
    const seen = storages.get(key as string);
    if (seen) {
      if (seen.dtype !== dtype || seen.numel !== numel) fail(where, `storage '${key}' is described twice, differently`);
      return seen;
    }
    const entry = zip.entry(`${prefix}/data/${key}`, 'storage');
    if (entry.size !== numel * FILE_DTYPES[dtype].size) {
      fail(where, `storage '${key}' should hold ${numel} ${dtype} elements (${numel * FILE_DTYPES[dtype].size} bytes) but its entry has ${entry.size}`);
    }
    const ref = new StorageRef(key as string, dtype, numel);
    storages.set(key as string, ref);
    return ref;
  };
}

function buildState(target: PickleValue, state: PickleValue): boolean {
  // OrderedDict state dicts carry `_metadata` (module versions) as instance attributes.
  if (target instanceof PickleDict && target.className === 'OrderedDict') {
    target.state = state;
    return true;
  }
  return false;
}

/** Walks the unpickled value, naming each tensor by its path (see the module comment). */
function collectTensors(root: PickleValue, where: string): Map<string, TensorRef> {
  const out = new Map<string, TensorRef>();
  const open = new Set<object>();
  const visit = (v: PickleValue, name: string): void => {
    if (v instanceof TensorRef) {
      if (out.has(name)) fail(where, `two tensors are named '${name}'`);
      out.set(name, v);
      return;
    }
    const children: Array<[string, PickleValue]> =
      v instanceof PickleDict ? [...v.entries].map(([k, c]) => [String(k), c]) : Array.isArray(v) ? v.map((c, i) => [String(i), c]) : [];
    if (children.length === 0) return;
    if (open.has(v as object)) fail(where, 'the pickled object contains itself');
    open.add(v as object);
    for (const [k, c] of children) visit(c, name === '' ? k : `${name}.${k}`);
    open.delete(v as object);
  };
  visit(root, '');
  return out;
}

/** The elements of a strided view, gathered contiguous (element size 1, 2, 4 or 8 bytes). */
function gather(storage: Uint8Array, elemSize: number, ref: TensorRef): Uint8Array {
  const numel = ref.shape.reduce((a, b) => a * b, 1);
  let src = storage;
  if (src.byteOffset % 4 !== 0) src = storage.slice();
  const W = elemSize === 1 ? Uint8Array : elemSize === 2 ? Uint16Array : Uint32Array;
  const k = elemSize === 8 ? 2 : 1; // 8-byte elements move as two words (bit-exact, no float loads)
  const s = new W(src.buffer as ArrayBuffer, src.byteOffset, src.byteLength / W.BYTES_PER_ELEMENT);
  const out = new W(numel * k);
  if (numel === 0) return new Uint8Array(out.buffer);
  const rank = ref.shape.length;
  if (rank === 0) {
    for (let j = 0; j < k; j++) out[j] = s[ref.offset * k + j]!;
    return new Uint8Array(out.buffer);
  }
  const inner = ref.shape[rank - 1]!;
  const innerStride = ref.stride[rank - 1]! * k;
  const index = new Array<number>(rank - 1).fill(0);
  let o = 0;
  for (;;) {
    let base = ref.offset;
    for (let d = 0; d < rank - 1; d++) base += index[d]! * ref.stride[d]!;
    let p = base * k;
    if (k === 1) {
      for (let i = 0; i < inner; i++, p += innerStride) out[o++] = s[p]!;
    } else {
      for (let i = 0; i < inner; i++, p += innerStride) {
        out[o++] = s[p]!;
        out[o++] = s[p + 1]!;
      }
    }
    let d = rank - 2;
    while (d >= 0 && ++index[d]! === ref.shape[d]) index[d--] = 0;
    if (d < 0) break;
  }
  return new Uint8Array(out.buffer);
}

function isContiguous(ref: TensorRef): boolean {
  let expected = 1;
  for (let d = ref.shape.length - 1; d >= 0; d--) {
    if (ref.shape[d] !== 1 && ref.stride[d] !== expected) return false;
    expected *= ref.shape[d]!;
  }
  return true;
}

/** Makes every tensor, one storage at a time (each storage read once, CRC-checked). */
function materialize(zip: ZipReader, prefix: string, refs: Map<string, TensorRef>, device: string, where: string): void {
  const byStorage = new Map<StorageRef, TensorRef[]>();
  for (const ref of new Set(refs.values())) {
    const list = byStorage.get(ref.storage) ?? [];
    list.push(ref);
    byStorage.set(ref.storage, list);
  }
  const names = new Map<TensorRef, string>();
  for (const [name, ref] of refs) if (!names.has(ref)) names.set(ref, name);
  try {
    for (const [storage, list] of byStorage) {
      const bytes = zip.read(zip.entry(`${prefix}/data/${storage.key}`, 'storage'), true); // tensors copy out before the next read
      const es = FILE_DTYPES[storage.dtype].size;
      for (const ref of list) {
        const numel = ref.shape.reduce((a, b) => a * b, 1);
        const elems = isContiguous(ref) ? bytes.subarray(ref.offset * es, (ref.offset + numel) * es) : gather(bytes, es, ref);
        const data = decodeElements(elems, storage.dtype, `${where}: tensor '${names.get(ref)}'`);
        ref.tensor = tensor(data, ref.shape, { dtype: FILE_DTYPES[storage.dtype].dtype, device });
      }
    }
  } catch (err) {
    for (const ref of names.keys()) ref.tensor?.dispose();
    throw err;
  }
}

/** A plain JS copy of the unpickled value: dicts → objects, tuples/lists → arrays, tensors → Tensors. */
function toPlain(v: PickleValue): unknown {
  if (v instanceof TensorRef) return v.tensor;
  if (v instanceof PickleDict) {
    const o: Record<string, unknown> = {};
    for (const [k, c] of v.entries) o[String(k)] = toPlain(c);
    return o;
  }
  if (Array.isArray(v)) return v.map((c) => toPlain(c));
  if (v instanceof PickleObject || v instanceof PickleGlobal) return undefined;
  return v;
}

/** A PyTorch checkpoint's tensors (flattened names) and the whole saved object. */
export interface TorchFile {
  tensors: Record<string, Tensor>;
  /** The saved object as plain JS (dicts as objects, tuples and lists as arrays, tensors as Tensors). */
  value: unknown;
}

/** The archive's prefix: the folder holding data.pkl (the file's stem when it was saved). */
function findPrefix(zip: ZipReader, where: string): string {
  const candidates = [...zip.entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (candidates.length === 0) fail(where, 'no <name>/data.pkl in the zip: not a PyTorch checkpoint');
  if (candidates.length > 1) fail(where, `several data.pkl entries (${candidates.join(', ')})`);
  return candidates[0]!.slice(0, -'/data.pkl'.length);
}

function readFrom(source: ByteSource, device: string): TorchFile {
  const where = source.name;
  if (source.size >= 2) {
    const head = source.read(0, 2, 'the file signature');
    if (head[0] === 0x80 && head[1]! <= 5) {
      fail(where, 'this is the legacy (pre-1.6) torch.save format, which is not supported; re-save it with a newer torch.save');
    }
  }
  const zip = new ZipReader(source);
  const prefix = findPrefix(zip, where);
  const byteorder: ZipEntry | undefined = zip.entries.get(`${prefix}/byteorder`);
  if (byteorder) {
    const order = new TextDecoder().decode(zip.read(byteorder)).trim();
    if (order !== 'little') fail(where, `storages are ${order}-endian; only little-endian is supported`);
  }
  const pkl = zip.read(zip.entry(`${prefix}/data.pkl`));
  const value = unpickle(pkl, {
    name: `${where} (${prefix}/data.pkl)`,
    globals: allowedGlobals(),
    persistentLoad: storageLoader(zip, prefix),
    build: buildState,
  });
  const refs = collectTensors(value, where);
  materialize(zip, prefix, refs, device, where);
  const tensors: Record<string, Tensor> = {};
  for (const [name, ref] of refs) tensors[name] = ref.tensor!;
  return { tensors, value: toPlain(value) };
}

/** Reads a PyTorch zip checkpoint: its tensors (CPU unless `device` says otherwise) and the saved object. */
export function readTorch(file: string, options: LoadOptions = {}): TorchFile {
  const device = resolveDevice(options.device);
  return withFile(file, (source) => readFrom(source, device));
}

/** Reads a PyTorch zip checkpoint's tensors, named by their path in the saved object ('encoder.layer.0.weight'). */
export function loadTorch(file: string, options: LoadOptions = {}): Record<string, Tensor> {
  return readTorch(file, options).tensors;
}
