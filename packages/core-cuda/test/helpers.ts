/** Shared test helpers: fixtures made by tools/golden, tolerances by dtype, comparisons. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect } from 'vitest';

import * as kx from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/** This CPU's feature flags (Linux's /proc/cpuinfo; none elsewhere), to skip targets it lacks. */
export const cpuFlags: ReadonlySet<string> = new Set(
  (() => {
    try {
      return (/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').split(/\s+/).filter(Boolean);
    } catch {
      return [];
    }
  })(),
);

/**
 * Runs `script` (a file of this folder) in a child Node process with `env` over this process's
 * environment (an undefined value removes the variable), for settings read once per process
 * (KEXUE_SIMD, KEXUE_FUSION, DNNL_MAX_CPU_ISA); the child must exit 0, and its last output line,
 * JSON, is returned.
 */
export function caseReport<T>(script: string, env: Record<string, string | undefined> = {}): T {
  const childEnv = { ...process.env };
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined) delete childEnv[name];
    else childEnv[name] = value;
  }
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--conditions=source', path.join(here, script)], {
    cwd: path.join(here, '..'),
    env: childEnv,
    encoding: 'utf8',
    timeout: 120_000,
  });
  expect(r.status, `${script} with ${JSON.stringify(env)}: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}

export interface Fixture {
  /** Tensors named "<case>.<role>" (CPU); `get` throws on a missing name. */
  tensors: Record<string, kx.Tensor>;
  get(name: string): kx.Tensor;
  /** The JSON case list written by the fixture script. */
  cases: Array<Record<string, unknown> & { name: string }>;
}

/** Loads test/fixtures/<name>.safetensors; its tensors are kept (outside any tidy). */
export function loadFixture(name: string): Fixture {
  const file = kx.io.readSafetensors(path.join(here, 'fixtures', `${name}.safetensors`));
  for (const t of Object.values(file.tensors)) kx.keep(t);
  return {
    tensors: file.tensors,
    get(key: string) {
      const t = file.tensors[key];
      if (!t) throw new Error(`fixture ${name} has no tensor '${key}'`);
      return t;
    },
    cases: JSON.parse(file.metadata.cases ?? '[]'),
  };
}

/**
 * Tolerance on the normalised max error (see maxRelError) by dtype, per ARCHITECTURE §5:
 * float32 1e-5 for elementwise/row ops, 1e-4 for long reductions and matrix products; halves a
 * small multiple of their epsilon (float16 2^-10, bfloat16 2^-7).
 */
export function tolerance(dtype: kx.DType, kind: 'elementwise' | 'reduction' = 'elementwise'): number {
  if (dtype === 'float16') return 4 * 2 ** -10;
  if (dtype === 'bfloat16') return 4 * 2 ** -7;
  return kind === 'elementwise' ? 1e-5 : 1e-4;
}

function values(x: kx.Tensor | Float32Array | number[]): Float32Array {
  if (x instanceof kx.Tensor) return x.toFloat32Array();
  return x instanceof Float32Array ? x : Float32Array.from(x);
}

/**
 * max_i |a_i − e_i| / max_i |e_i|: the largest error relative to the reference's scale, so that
 * entries near zero do not blow it up. Non-finite entries must match exactly.
 */
export function maxRelError(actual: kx.Tensor | Float32Array | number[], expected: kx.Tensor | Float32Array | number[]): number {
  const a = values(actual);
  const e = values(expected);
  expect(a.length).toBe(e.length);
  let maxErr = 0;
  let scale = 0;
  for (let i = 0; i < e.length; i++) {
    const x = a[i]!;
    const y = e[i]!;
    if (!Number.isFinite(y) || !Number.isFinite(x)) {
      if (!(Object.is(x, y) || (Number.isNaN(x) && Number.isNaN(y)))) return Infinity;
      continue;
    }
    maxErr = Math.max(maxErr, Math.abs(x - y));
    scale = Math.max(scale, Math.abs(y));
  }
  return scale === 0 ? maxErr : maxErr / scale;
}

/** Asserts shape equality and maxRelError ≤ tol. */
export function expectClose(actual: kx.Tensor, expected: kx.Tensor | Float32Array | number[], tol: number, label = ''): void {
  if (expected instanceof kx.Tensor) expect(actual.shape, `${label} shape`).toEqual(expected.shape);
  const err = maxRelError(actual, expected);
  expect(err, `${label} max relative error ${err} > ${tol}`).toBeLessThanOrEqual(tol);
}

/** Asserts that checkGrad passes, printing the worst element when it does not. */
export function expectGradOk(fn: (...inputs: kx.Tensor[]) => kx.Tensor, inputs: kx.Tensor[], options: kx.CheckGradOptions = {}): void {
  const r = kx.checkGrad(fn, inputs, options);
  expect(r.ok, `finite differences: ${JSON.stringify(r)}`).toBe(true);
}

/**
 * Asserts that fn throws a KexueError with the given code and returns it, for checks of its message
 * or fields. For a promise or an async function, use expectCodeAsync.
 */
export function expectCode(fn: () => unknown, code: kx.ErrorCode): kx.KexueError {
  let result: unknown;
  try {
    result = fn();
  } catch (err) {
    return kexueErrorOf(err, code);
  }
  if (result instanceof Promise) {
    result.catch(() => {}); // not left unhandled
    expect.fail(`expected ${code}, but fn returned a promise (use expectCodeAsync)`);
  }
  return expect.fail(`expected ${code}, nothing was thrown`);
}

/**
 * Asserts that the promise (or the one fn returns, or fn itself) rejects with a KexueError with the
 * given code, and returns it.
 */
export async function expectCodeAsync(fnOrPromise: Promise<unknown> | (() => unknown), code: kx.ErrorCode): Promise<kx.KexueError> {
  try {
    await (typeof fnOrPromise === 'function' ? fnOrPromise() : fnOrPromise);
  } catch (err) {
    return kexueErrorOf(err, code);
  }
  return expect.fail(`expected ${code}, nothing was thrown`);
}

function kexueErrorOf(err: unknown, code: kx.ErrorCode): kx.KexueError {
  expect(err, `expected a KexueError ${code}`).toBeInstanceOf(kx.KexueError);
  const e = err as kx.KexueError;
  expect(e.code, `expected ${code}, got ${e.code}: ${e.message}`).toBe(code);
  return e;
}

/** A deterministic float32 tensor with values in [-scale, scale) (mulberry32). */
export function randomTensor(shape: number[], seed: number, scale = 1): kx.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    data[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return kx.tensor(data, shape);
}

/** A temporary directory for the tests of this file, made now and removed after them. */
export function useTempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A tensor's values on any device, read through a host copy that is freed at once. */
export function hostValues(t: kx.Tensor): number[] {
  const host = t.to('cpu');
  const out = Array.from(host.toFloat32Array());
  host.dispose();
  return out;
}
