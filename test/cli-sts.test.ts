/**
 * `kexue eval sts` end to end (in process) on the real STS sets of ../shared/data with a small
 * Hugging Face BERT checkpoint made in PyTorch (packages/models/test/fixtures/sentence_hf: the
 * layout of bert-base-chinese, the path a user with those weights runs to reproduce
 * ALGORITHMS.md §3.5): the table (one row per set, raw / whitened / whitened-k), its JSON, the
 * rotation case (β = γ = 0: whitened = raw) and k above the rank as one error.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { repoRoot, run } from '../packages/cli/test/run_cli.js';

const HF_DIR = 'packages/models/test/fixtures/sentence_hf';
const SETS = ['ATEC', 'BQ', 'LCQMC', 'PAWSX', 'STS-B'];
let tmp: string;

beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'kexue-sts-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface StsJson {
  pooling: string;
  beta: number;
  gamma: number;
  dimension: number;
  limit: number;
  sets: { set: string; split: string; pairs: number; fitted: number; rank: number; kFull: number; k: number; raw: number; whitened: number; whitenedK: number }[];
  average: Record<string, number>;
}

describe('kexue eval sts', () => {
  it('prints the table of §3.5 for a Hugging Face checkpoint and writes it as JSON', async () => {
    const out = path.join(tmp, 'sts.json');
    const r = await run(['eval', 'sts', HF_DIR, '--pooling', 'first-last-avg', '--whiten', 'beta=1,gamma=1,k=8', '--limit', '12', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const lines = r.out.trim().split('\n');
    expect(lines[0]).toBe('Spearman × 100 (first-last-avg, β = 1, γ = 1, D = 32)');
    expect(lines[1]).toMatch(/^\| data +\| split +\| pairs \| +raw \| whitened \| whitened k=8 \|$/);
    expect(lines.slice(3).map((l) => l.split('|')[1]!.trim())).toEqual([...SETS, 'average']);
    const json = JSON.parse(readFileSync(out, 'utf8')) as StsJson;
    expect([json.pooling, json.beta, json.gamma, json.dimension, json.limit]).toEqual(['first-last-avg', 1, 1, 32, 12]);
    expect(json.sets.map((s) => [s.set, s.split, s.pairs, s.k])).toEqual(SETS.map((s) => [s, 'valid', 12, 8]));
    // STS-B has a train split too: its whitening is fitted on both (§3.2)
    expect(json.sets.map((s) => s.fitted)).toEqual([24, 24, 24, 24, 48]);
    for (const s of json.sets) {
      expect(s.kFull).toBe(Math.min(32, s.rank));
      for (const v of [s.raw, s.whitened, s.whitenedK]) expect(Math.abs(v)).toBeLessThanOrEqual(1);
    }
    // fewer vectors than dimensions: the full column keeps the rank, and says so
    expect(r.err).toMatch(/ATEC: Σ_β of 24 vectors has rank 23 < 32: the whitened column keeps 23 dimensions/);
    // the table shows the JSON's numbers × 100
    const atec = lines[3]!.split('|').map((c) => c.trim());
    expect(Number(atec[4])).toBeCloseTo(json.sets[0]!.raw * 100, 2);
  });

  it('with β = γ = 0 the full whitening is a rotation (onto the directions of the rank): Spearman as raw', async () => {
    const out = path.join(tmp, 'rotation.json');
    const r = await run(['eval', 'sts', path.join(repoRoot, HF_DIR), '--whiten', 'beta=0,gamma=0', '--limit', '24', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const json = JSON.parse(readFileSync(out, 'utf8')) as StsJson;
    for (const s of json.sets) {
      // what the rank leaves out is directions of eigenvalues below 32 · 2⁻²³ of the largest
      expect(s.kFull).toBe(s.rank);
      expect(s.rank).toBeGreaterThan(26);
      expect(Math.abs(s.whitened - s.raw)).toBeLessThan(1e-3);
    }
  });

  it('fails with one message for k above the rank and for a malformed --whiten', async () => {
    const r = await run(['eval', 'sts', HF_DIR, '--whiten', 'k=30', '--limit', '6']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/\[E_ARG\].*ATEC: k = 30 exceeds the numerical rank 11 of Σ_β/);
    const bad = await run(['eval', 'sts', HF_DIR, '--whiten', 'beta=x']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--whiten: beta must be a number/);
    const missing = await run(['eval', 'sts', HF_DIR, '--data', path.join(tmp, 'nothing')]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/\[E_IO\].*does not exist/);
  });
});
