/**
 * `kexue jl`: a .npy of vectors projected at the bound's n (the JSON report and the table), the
 * projected vectors written with --out, sign bits, and bad input as the CLI's usual error lines.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import * as kx from '@kexue/core-cuda';
import { InitRng, PROJECTION_KINDS, jlDimension, npyBytes, readVectors, type JlReport } from '@kexue/models';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { run } from './run_cli.js';

let tmp: string;
let vectors: string;
beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'kexue-jl-cli-'));
  const rng = new InitRng(1);
  vectors = path.join(tmp, 'vectors.npy');
  writeFileSync(vectors, npyBytes(Float32Array.from({ length: 60 * 50 }, () => rng.normal()), [60, 50]));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('kexue jl', () => {
  it('projects to the bound and reports the distortion as JSON, writing the projection with --out', async () => {
    const out = path.join(tmp, 'projected.npy');
    const r = await run(['jl', vectors, '--eps', '0.5', '--json', '--out', out]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.out) as JlReport & { file: string; out: string };
    expect(report.dimension).toBe(jlDimension(60, 0.5));
    expect(report.points).toBe(60);
    expect(report.distances!.pairs).toBe(1770);
    expect(report.distances!.withinEps).toBe(1);
    expect(report.bound.failureProbability).toBeLessThan(1 / 60);
    const projected = readVectors(out);
    expect(projected.shape).toEqual([60, report.dimension]);
    projected.dispose();
    // the same seed, the same report
    expect(JSON.parse((await run(['jl', vectors, '--eps', '0.5', '--json', '--out', out])).out)).toEqual(report);
    const seed1 = JSON.parse((await run(['jl', vectors, '--eps', '0.5', '--json', '--seed', '1'])).out) as JlReport;
    expect(seed1.distances!.maxDistortion).not.toBe(report.distances!.maxDistortion);
  });

  it('prints a table; sign bits report the angle estimate; --pairs samples', async () => {
    const table = await run(['jl', vectors, '--dim', '40', '--kind', 'achlioptas', '--seed', '2']);
    expect(table.code).toBe(0);
    expect(table.out).toContain('vectors.npy: 60 vectors of dimension 50 -> 40 (achlioptas, seed 2)');
    expect(table.out).toMatch(/within \(1 ± ε\) +\d+\.\d{3}%/);
    const sign = await run(['jl', vectors, '--dim', '2048', '--kind', 'sign', '--pairs', '45', '--json']);
    const report = JSON.parse(sign.out) as JlReport;
    expect(report.measuredRows).toBe(10);
    expect(report.angles!.pairs).toBe(45);
    expect(report.angles!.meanAngleError).toBeLessThan(0.05);
  });

  it('offers every projection kind', async () => {
    const help = await run(['jl', '--help']);
    for (const kind of PROJECTION_KINDS) expect(help.out).toContain(kind);
  });

  it('turns bad input into error lines and exit codes, leaving no tensors behind', async () => {
    const live = kx.memory().tensors;
    const missing = await run(['jl', path.join(tmp, 'missing.npy')]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^kexue: error \[E_IO\]: cannot read vectors .*missing\.npy: no such file or directory \(ENOENT\)\n$/);
    const garbage = path.join(tmp, 'garbage.npy');
    writeFileSync(garbage, 'not a numpy file');
    expect((await run(['jl', garbage])).err).toMatch(/^kexue: error \[E_FORMAT\]/);
    expect((await run(['jl', path.join(tmp, 'vectors.csv')])).err).toMatch(/^kexue: error \[E_ARG\]: readVectors: .* must end in \.npy or \.safetensors/);
    for (const eps of ['0', '1', '1.5', '-0.2']) {
      const r = await run(['jl', vectors, '--eps', eps]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/^kexue: error \[E_ARG\]: jl: ε must be a number in \(0, 1\)/);
    }
    const zero = await run(['jl', vectors, '--dim', '0']);
    expect(zero.code).toBe(1);
    expect(zero.err).toMatch(/^kexue: error \[E_ARG\]: jl: the dimension n must be a positive integer, got 0/);
    const word = await run(['jl', vectors, '--dim', 'many']);
    expect(word.code).toBe(2);
    expect(word.err).toContain('--dim: expected a positive integer or auto');
    const kind = await run(['jl', vectors, '--kind', 'dense']);
    expect(kind.code).toBe(2);
    const ones = path.join(tmp, 'one.npy');
    writeFileSync(ones, npyBytes(new Float32Array(50), [1, 50]));
    expect((await run(['jl', ones])).err).toMatch(/^kexue: error \[E_SHAPE\]: jl: vectors must be \[N, m\] with N >= 2/);
    expect(kx.memory().tensors).toBe(live);
  });
});
