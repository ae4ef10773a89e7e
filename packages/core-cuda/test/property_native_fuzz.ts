/**
 * The native layer under arbitrary calls: every op of native/core/ops.def run through runKernel
 * (which bypasses the TS validation, as DESIGN.md "Errors" promises is safe) with random inputs
 * (the declared count or one off, the declared kinds or others, null for optional or required
 * ones, shapes of rank 0–5 with 0-size dims, ids and labels in and out of range) and random
 * attributes (numbers including NaN, ±Infinity, 1e300 and huge integers; booleans; strings; integer
 * lists). The rule: every call returns readable tensors or throws a KexueError other than
 * E_INTERNAL, and the storages come back.
 *
 * Run as a child process by properties_native.test.ts, so that a native crash (a signal) or a hang
 * (the parent's timeout) fails that test instead of killing vitest's worker:
 *   node --import tsx --conditions=source test/property_native_fuzz.ts <seed> <runsPerOp> <lastCaseFile> [op...]
 * Before each call it writes the call to <lastCaseFile>, so the parent can name the one that crashed.
 * Exit 0: every op passed; exit 1: a property failed (fast-check's report on stderr).
 */
import { openSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import fc from 'fast-check';

import * as kx from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const [seedArg, runsArg, lastCaseFile, ...onlyOps] = process.argv.slice(2);
const seed = Number(seedArg ?? 1);
const runsPerOp = Number(runsArg ?? 100);

interface InputSpec {
  name: string;
  kind: 'float' | 'int32' | 'uint8' | 'any';
  optional: boolean;
  variadic: boolean;
}
interface OpSpec {
  name: string;
  inputs: InputSpec[];
  attrs: string[];
}

/** The op table, read from ops.def itself (input names, kinds, optional and variadic marks). */
function opTable(): OpSpec[] {
  const text = readFileSync(path.join(here, '..', 'native', 'core', 'ops.def'), 'utf8');
  const ops: OpSpec[] = [];
  for (const m of text.matchAll(/^KX_OP\((\w+),\s*"([^"]*)",\s*"([^"]*)"/gm)) {
    const inputs = m[2]!
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map((s) => {
        const [rawName, kind = 'any'] = s.split(':') as [string, string?];
        const variadic = rawName.endsWith('...');
        const optional = rawName.endsWith('?');
        return { name: rawName.replace(/[.?]+$/, ''), kind: kind as InputSpec['kind'], optional, variadic };
      });
    const attrs = m[3]!
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    ops.push({ name: m[1]!, inputs, attrs });
  }
  return ops;
}

type TensorSpec = { dtype: kx.DType; shape: number[]; seed: number } | null;
interface CallSpec {
  inputs: TensorSpec[];
  attrs: Record<string, unknown>;
}

const dim = fc.oneof({ arbitrary: fc.constant(0), weight: 1 }, { arbitrary: fc.integer({ min: 1, max: 4 }), weight: 6 });
const anyShape = fc.array(dim, { minLength: 0, maxLength: 5 });

/** An attribute value: mostly plausible, often absurd. */
const attrValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.integer({ min: -3, max: 6 }), weight: 6 },
  { arbitrary: fc.constantFrom(0.5, -0.5, 1e-6, 0.999, 1, NaN, Infinity, -Infinity, 1e300, -1e300, 2 ** 49, 2 ** 53, -(2 ** 63), 2 ** 63, -(2 ** 31) - 1), weight: 3 },
  { arbitrary: fc.boolean(), weight: 3 },
  { arbitrary: fc.constantFrom('none', 'tanh', 'exp', 'gelu', 'pow', 'log', 'float16', 'bfloat16', 'int32', 'uint8', 'float32', 'tensor', 'row', '', 'bogus'), weight: 3 },
  {
    arbitrary: fc.array(fc.oneof({ arbitrary: fc.integer({ min: -2, max: 5 }), weight: 8 }, { arbitrary: fc.constantFrom(2 ** 49, 2 ** 53, -(2 ** 63), 0.5, NaN, Infinity), weight: 1 }), { maxLength: 6 }),
    weight: 4,
  },
);

/** A plausible value for an attribute, by its name (the types the kernels read), or an absurd one. */
function plausible(name: string): fc.Arbitrary<unknown> {
  const small = fc.integer({ min: -2, max: 4 });
  const list = fc.array(fc.integer({ min: -2, max: 4 }), { maxLength: 5 });
  const byName: Record<string, fc.Arbitrary<unknown>> = {
    fn: fc.constantFrom('neg', 'exp', 'log', 'sqrt', 'rsqrt', 'tanh', 'sigmoid', 'relu', 'silu', 'gelu', 'pow'),
    approximate: fc.constantFrom('none', 'tanh'),
    dtype: fc.constantFrom(...kx.DTYPES),
    rms: fc.constantFrom('none', 'tensor', 'row'),
    seed: fc.nat(1000),
    offset: fc.nat(1000),
    rows: fc.nat(6),
    p: fc.constantFrom(0, 0.5, 0.9),
  };
  const typed = byName[name] ?? (/^(axes|shape|perm|begin|size)$/.test(name) ? list : /^(keepDims|trans[AB]|causal|inverse|log|tril|maskZero|first|nesterov|centre)$/.test(name) ? fc.boolean() : /^(axis|ignoreIndex|step|accumSteps)$/.test(name) ? small : fc.constantFrom(0, 1e-5, 0.5, 1, 2));
  return fc.oneof({ arbitrary: typed, weight: 7 }, { arbitrary: attrValue, weight: 3 });
}

/** A call of op: inputs of a shared base shape (often), the declared kinds (often), attrs plausible (often). */
function callArb(op: OpSpec): fc.Arbitrary<CallSpec> {
  const variadic = op.inputs.length === 1 && op.inputs[0]!.variadic;
  const declared = op.inputs.length;
  const count = variadic ? fc.integer({ min: 0, max: 9 }) : fc.oneof({ arbitrary: fc.constant(declared), weight: 8 }, { arbitrary: fc.integer({ min: Math.max(0, declared - 1), max: declared + 1 }), weight: 2 });
  const attrs = fc.record(Object.fromEntries(op.attrs.map((a) => [a, fc.option(plausible(a), { nil: undefined, freq: 3 })])));
  return fc.record({ base: anyShape, n: count, seeds: fc.array(fc.record({ shapeMode: fc.nat(9), kindMode: fc.nat(9), nullMode: fc.nat(9), shape: anyShape, float: fc.constantFrom<kx.DType>('float32', 'float32', 'float16', 'bfloat16'), other: fc.constantFrom(...kx.DTYPES), seed: fc.integer() }), { minLength: 10, maxLength: 10 }), attrs }).map(({ base, n, seeds, attrs }) => {
    const inputs: TensorSpec[] = [];
    for (let i = 0; i < n; i++) {
      const s = seeds[i]!;
      const spec = op.inputs[variadic ? 0 : i];
      if ((s.nullMode === 0 && s.kindMode === 0) || (spec?.optional && s.nullMode < 4)) {
        inputs.push(null);
        continue;
      }
      // The declared kind 8 times in 10; a float where one is due in one of the three float dtypes.
      const kind = spec?.kind ?? 'any';
      const dtype: kx.DType = s.kindMode < 8 ? (kind === 'int32' ? 'int32' : kind === 'uint8' ? 'uint8' : kind === 'float' ? s.float : s.other) : s.other;
      // The base shape, a suffix of it, its last dim alone, a scalar, or any shape.
      const shape = s.shapeMode < 5 ? base : s.shapeMode < 7 ? base.slice(1) : s.shapeMode < 8 ? base.slice(-1) : s.shapeMode < 9 ? [] : s.shape;
      inputs.push({ dtype, shape, seed: s.seed });
    }
    const defined = Object.fromEntries(Object.entries(attrs).filter(([, v]) => v !== undefined));
    return { inputs, attrs: defined };
  });
}

/** Contents: floats in [-3, 3] with a few non-finite values; ints in [-3, 8]; uint8 0/1 and a 7. */
function materialise(t: Exclude<TensorSpec, null>): kx.Tensor {
  const n = t.shape.reduce((a, b) => a * b, 1);
  let s = t.seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  if (t.dtype === 'int32') return kx.tensor(Int32Array.from({ length: n }, () => Math.floor(next() * 12) - 3), t.shape);
  if (t.dtype === 'uint8') return kx.tensor(Uint8Array.from({ length: n }, () => [0, 1, 1, 7][Math.floor(next() * 4)]!), t.shape);
  const vals = Float32Array.from({ length: n }, () => {
    const u = next();
    return u < 0.03 ? [NaN, Infinity, -Infinity][Math.floor(u * 100)]! : (next() * 2 - 1) * 3;
  });
  return kx.tensor(vals, t.shape, { dtype: t.dtype });
}

function describe(op: string, c: CallSpec): string {
  const ins = c.inputs.map((t) => (t ? `${t.dtype}[${t.shape.join(',')}]` : 'null')).join(', ');
  const attrs = JSON.stringify(c.attrs, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v));
  return `${op}(${ins}; ${attrs})`;
}

const outcomes: Record<string, number> = {};
const ops = opTable().filter((o) => onlyOps.length === 0 || onlyOps.includes(o.name));
const known = new Set(kx.buildInfo().ops.map((o) => o.name));
for (const o of ops) if (!known.has(o.name)) throw new Error(`ops.def names ${o.name} but the addon does not`);

// The call about to run, written in place (a positional write: no open or rename per call).
const lastCase = lastCaseFile ? openSync(lastCaseFile, 'w') : null;
function record(text: string): void {
  if (lastCase === null) return;
  const line = Buffer.from(`${text}\n`.padEnd(2048, ' '));
  writeSync(lastCase, line, 0, line.length, 0);
}

const start = kx.memory();
let failed = false;
for (const op of ops) {
  try {
    fc.assert(
      fc.property(callArb(op), (c) => {
        const made: kx.Tensor[] = [];
        try {
          const inputs = c.inputs.map((t) => (t ? made[made.push(materialise(t)) - 1]! : null));
          record(describe(op.name, c));
          let outs: kx.Tensor[];
          try {
            outs = kx.runKernel(op.name, inputs, c.attrs as Record<string, number>);
          } catch (e) {
            if (e instanceof kx.KexueError && e.code !== 'E_INTERNAL') {
              outcomes[e.code] = (outcomes[e.code] ?? 0) + 1;
              return;
            }
            throw new Error(`not a KexueError: ${e instanceof Error ? `${e.constructor.name} ${(e as { code?: string }).code ?? ''}: ${e.message}` : String(e)}`);
          }
          outcomes.ok = (outcomes.ok ?? 0) + 1;
          made.push(...outs);
          // Every output must be readable and as long as its shape says.
          for (const t of outs) {
            const data = t.dataSync();
            const n = t.shape.reduce((a, b) => a * b, 1);
            if (data.length !== n) throw new Error(`${t.describe()} holds ${data.length} elements`);
          }
        } finally {
          for (const t of made) t.dispose();
        }
      }),
      { seed, numRuns: runsPerOp },
    );
  } catch (e) {
    failed = true;
    process.stderr.write(`${op.name}: ${(e as Error).message}\n`);
  }
}
const end = kx.memory();
if (end.storages !== start.storages || end.tensors !== start.tensors) {
  failed = true;
  process.stderr.write(`leak: ${end.tensors - start.tensors} tensors, ${end.storages - start.storages} storages left\n`);
}
process.stdout.write(`${JSON.stringify({ ops: ops.length, runsPerOp, outcomes })}\n`);
process.exit(failed ? 1 : 0);
