/**
 * The benchmark harness's logic that needs no timing: /proc parsing and the load decision, the
 * machine's ISA, the PyTorch settings and their environments, medians and the fastest setting, the
 * Markdown and results.json, the safetensors files the BERT inference cases share with PyTorch, and
 * PyTorch's side of the sentence-encoding and whitening cases against kexue's output.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import * as kx from '@kexue/core-cuda';
import { BertTokenizer, BUNDLED_VOCABS, SentenceEncoder, Whitening } from '@kexue/models';
import { afterAll, describe, expect, it } from 'vitest';

import { bertFilesDir, bertForwardFlops, INFER_MODELS, maxAbsDiff } from '../bench/src/bert_files.js';
import { loadKexueBert } from '../bench/src/bert_kexue.js';
import { summarizeLoad, type CheckedBlock } from '../bench/src/blocks.js';
import { vmBytes } from '../bench/src/footprint.js';
import { isaFromCpuinfo } from '../bench/src/machine.js';
import { blockLoad, DEFAULT_LOAD_LIMIT, isLoaded, parsePidStatTicks, parseProcStat, type CpuSnapshot } from '../bench/src/proc.js';
import { readReport, toMarkdown, writeReport } from '../bench/src/report.js';
import { hasOpenblasOverrides } from '../bench/src/peaks.js';
import { rand } from '../bench/src/random.js';
import { torchFields, type BenchReport, type CaseResult, type SideKey } from '../bench/src/result.js';
import { fillTimes } from '../bench/src/run.js';
import { benchPython, TORCH_SCRIPT, torchEnv, torchSettings, type TorchSetting, type TorchSettingName } from '../bench/src/torch.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'kexue-bench-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const hasTorch = (() => {
  try {
    execFileSync(benchPython(), ['-c', 'import torch'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** Runs Python lines after `import torch_bench`; the last line of its output. */
function torchBench(lines: string[]): string {
  const script = ['import sys, json, torch', `sys.path.insert(0, ${JSON.stringify(path.dirname(TORCH_SCRIPT))})`, 'import torch_bench', ...lines].join('\n');
  // -B: no __pycache__ beside torch_bench.py
  return execFileSync(benchPython(), ['-B', '-c', script], { encoding: 'utf8' }).trim().split('\n').pop()!;
}

/** A Python expression for a JSON value (through json.loads, so that true, false and null read back). */
const pyJson = (value: unknown) => `json.loads(${JSON.stringify(JSON.stringify(value))})`;

describe('/proc parsing', () => {
  it('reads the aggregate cpu line of /proc/stat', () => {
    const text = 'cpu  100 5 50 1000 20 3 2 7 0 0\ncpu0 50 2 25 500 10 1 1 3 0 0\nintr 1 2 3\n';
    // busy = user + nice + system + irq + softirq + steal; total adds idle and iowait
    expect(parseProcStat(text)).toEqual({ busy: 100 + 5 + 50 + 3 + 2 + 7, total: 167 + 1000 + 20 });
    expect(() => parseProcStat('intr 1 2 3\n')).toThrow(/no aggregate cpu line/);
  });

  it('reads utime + stime after the last parenthesis of /proc/<pid>/stat', () => {
    // a command name with spaces and parentheses of its own
    const line = '4242 (node (worker) 1) S 1 4242 4242 0 -1 4194560 900 0 0 0 321 45 0 0 20 0 11 0 1234 5678 90';
    expect(parsePidStatTicks(line)).toBe(321 + 45);
    expect(() => parsePidStatTicks('garbage')).toThrow();
  });

  it('reads this process from the real /proc', () => {
    if (process.platform !== 'linux') return;
    expect(parsePidStatTicks(readFileSync('/proc/self/stat', 'utf8'))).toBeGreaterThanOrEqual(0);
    const status = readFileSync('/proc/self/status', 'utf8'); // one reading: RSS may grow between two
    expect(vmBytes('VmHWM', status)).toBeGreaterThanOrEqual(vmBytes('VmRSS', status));
  });

  it('reads VmRSS and VmHWM from a status text', () => {
    const status = 'Name:\tnode\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n';
    expect(vmBytes('VmHWM', status)).toBe(204800 * 1024);
    expect(vmBytes('VmRSS', status)).toBe(102400 * 1024);
  });
});

describe('the load decision', () => {
  const snap = (busy: number, total: number, timed: number, siblings = 0): CpuSnapshot => ({ machine: { busy, total }, timed, siblings });

  it('counts what the machine did beyond the timed process, in cores', () => {
    // 2 CPUs for 1 s at 100 ticks/s: 200 ticks; the timed process used 100 (one core), the machine 150
    const load = blockLoad(snap(0, 0, 0), snap(150, 200, 100, 10), 2);
    expect(load.foreignTicks).toBe(50);
    expect(load.foreignCores).toBeCloseTo(0.5);
    expect(load.siblingCores).toBeCloseTo(0.1);
    expect(isLoaded(load)).toBe(true);
  });

  it('a quiet block is not loaded, nor a short one whose foreign ticks are within the noise', () => {
    expect(isLoaded(blockLoad(snap(0, 0, 0), snap(202, 400, 200), 2))).toBe(false); // 0.01 cores
    // 2 ticks of 20 are 0.2 cores, but two ticks are /proc's accounting noise
    expect(isLoaded(blockLoad(snap(0, 0, 0), snap(12, 20, 10), 2), DEFAULT_LOAD_LIMIT)).toBe(false);
    expect(isLoaded(blockLoad(snap(0, 0, 0), snap(14, 20, 10), 2), DEFAULT_LOAD_LIMIT)).toBe(true);
  });

  it('never reports negative foreign load (the timed process measured above the sampled machine)', () => {
    expect(blockLoad(snap(0, 0, 0), snap(95, 200, 100), 2).foreignCores).toBe(0);
  });

  it('sums up the kept blocks of a case', () => {
    const block = (foreignCores: number, attempts: number, loaded: boolean): CheckedBlock<number[]> => ({
      value: [],
      load: { foreignCores, siblingCores: foreignCores / 10, foreignTicks: 10 },
      loaded,
      attempts,
    });
    expect(summarizeLoad([block(0.02, 1, false), block(0.5, 3, true), block(0.05, 2, false)])).toEqual({
      foreign_cores_max: 0.5,
      foreign_cores_median: 0.05,
      sibling_cores_max: 0.05,
      blocks: 3,
      retried_blocks: 2,
      loaded_blocks: 1,
    });
    expect(summarizeLoad([{ value: [], load: null, loaded: false, attempts: 1 }])).toBeNull();
  });
});

describe('the machine and the torch children', () => {
  it('names the widest vector extension of /proc/cpuinfo', () => {
    expect(isaFromCpuinfo('processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 avx512f avx512bw\n')).toBe('avx512f');
    expect(isaFromCpuinfo('flags\t\t: fpu sse4_2 avx avx2 fma\n')).toBe('avx2');
    expect(isaFromCpuinfo('model name\t: something\n')).toBe('unknown');
  });

  const names = (settings: TorchSetting[]) => settings.map((s) => s.name);

  it('runs PyTorch in both wait policies, and both again without OpenBLAS overrides only where the environment has some', () => {
    expect(names(torchSettings({ PATH: '/bin', OPENBLAS_NUM_THREADS: '1' }))).toEqual(['passive', 'default']);
    expect(hasOpenblasOverrides({ OPENBLAS_NUM_THREADS: '1' })).toBe(false);
    const four = ['passive', 'default', 'passive_openblas_auto', 'default_openblas_auto'];
    expect(names(torchSettings({ OPENBLAS_CORETYPE: 'Haswell' }))).toEqual(four);
    expect(names(torchSettings({ OPENBLAS_L2_SIZE: '512' }))).toEqual(four);
  });

  it('gives each setting its wait policy and OpenBLAS variables, leaving the rest of the environment alone', () => {
    const env = { PATH: '/bin', OMP_WAIT_POLICY: 'ACTIVE', OPENBLAS_CORETYPE: 'Haswell', OPENBLAS_L2_SIZE: '512', OPENBLAS_THREAD_TIMEOUT: '4' };
    const copy = { ...env };
    const byName = new Map(torchSettings(env).map((s) => [s.name, torchEnv(2, s, env)]));
    const blas = { OPENBLAS_CORETYPE: 'Haswell', OPENBLAS_L2_SIZE: '512', OPENBLAS_THREAD_TIMEOUT: '4' };
    expect(byName.get('passive')).toEqual({ PATH: '/bin', OMP_NUM_THREADS: '2', OMP_WAIT_POLICY: 'PASSIVE', ...blas });
    expect(byName.get('default')).toEqual({ PATH: '/bin', OMP_NUM_THREADS: '2', ...blas });
    expect(byName.get('passive_openblas_auto')).toEqual({ PATH: '/bin', OMP_NUM_THREADS: '2', OMP_WAIT_POLICY: 'PASSIVE', OPENBLAS_THREAD_TIMEOUT: '4' });
    expect(byName.get('default_openblas_auto')).toEqual({ PATH: '/bin', OMP_NUM_THREADS: '2', OPENBLAS_THREAD_TIMEOUT: '4' });
    expect(env).toEqual(copy);
  });
});

function emptyResult(name: string): CaseResult {
  return { case: name, what: `${name} does things`, kexue_ms: null, torch_ms: null, ratio: null, kexue_samples: [], load: null, loaded: false };
}

describe('results', () => {
  it('picks the fastest PyTorch setting, the earlier of equal ones, and keeps every setting\'s time', () => {
    const ms = (entries: [TorchSettingName, number | null][]) => torchFields(new Map(entries));
    expect(ms([['passive', 5], ['default', 4], ['passive_openblas_auto', 3], ['default_openblas_auto', null]])).toEqual({
      torch_ms: 3,
      torch_setting: 'passive_openblas_auto',
      torch_passive_ms: 5,
      torch_default_ms: 4,
      torch_passive_openblas_auto_ms: 3,
      torch_default_openblas_auto_ms: null,
    });
    expect(ms([['passive', 2], ['default', 2]])).toMatchObject({ torch_ms: 2, torch_setting: 'passive' });
    expect(ms([['passive', null]])).toEqual({ torch_ms: null, torch_passive_ms: null });
    expect(ms([])).toEqual({ torch_ms: null });
  });

  it('reports the fastest PyTorch setting, every setting and the ratios', () => {
    const r = emptyResult('x');
    const samples = new Map<SideKey, number[]>([
      ['kexue', [10, 12, 11]],
      ['torch_passive', [20, 22, 21]],
      ['torch_default', [30, 29, 31]],
      ['ort', [5, 5, 6]],
    ]);
    fillTimes(r, samples);
    expect(r).toMatchObject({ kexue_ms: 11, torch_ms: 21, torch_setting: 'passive', torch_passive_ms: 21, torch_default_ms: 30, ort_ms: 5 });
    expect(r.ratio).toBeCloseTo(11 / 21);
    expect(r.ratio_ort).toBeCloseTo(11 / 5);
    expect(r.torch_default_samples).toEqual([30, 29, 31]);

    const four = emptyResult('z');
    fillTimes(four, new Map<SideKey, number[]>([
      ['kexue', [10]],
      ['torch_passive', [20]],
      ['torch_default', [30]],
      ['torch_passive_openblas_auto', [15]],
      ['torch_default_openblas_auto', [16]],
    ]));
    expect(four).toMatchObject({ torch_ms: 15, torch_setting: 'passive_openblas_auto', torch_passive_ms: 20, torch_default_openblas_auto_ms: 16 });
    expect(four.ratio).toBeCloseTo(10 / 15);
    expect(four.torch_passive_openblas_auto_samples).toEqual([15]);

    const kexueOnly = emptyResult('y');
    fillTimes(kexueOnly, new Map([['kexue', [1]]]));
    expect(kexueOnly).toMatchObject({ kexue_ms: 1, torch_ms: null, ratio: null });
    expect('ort_ms' in kexueOnly).toBe(false);
    expect('torch_setting' in kexueOnly).toBe(false);
  });

  const report = (results: CaseResult[]): BenchReport => ({
    date: '2026-01-01T00:00:00.000Z',
    threads: 2,
    node: 'v20',
    torch: '1.13',
    ort: '1.31.1',
    cpu: 'CPU',
    machine: { isa: 'avx512f', addonSimd: 'AVX3', loadavgStart: [0.1, 0.2, 0.3], loadavgEnd: [0.2, 0.2, 0.3], busyCoresAtStart: 0.02, cpus: 2 },
    blas: 'openblas',
    openblasEnv: {},
    peaks: null,
    peaksWithoutOpenblasOverrides: null,
    results,
  });

  it('names the PyTorch settings, how often each won, and the peaks of both engines in the header', () => {
    const won = (name: string, setting: TorchSettingName): CaseResult => ({ ...emptyResult(name), kexue_ms: 1, torch_ms: 2, torch_setting: setting, ratio: 0.5 });
    const peaks = { sgemmGflops: 200, sgemmN: 2048, onednnGflops: 400, copyGBs: 50, threads: 2, openblasEnv: { OPENBLAS_CORETYPE: 'Haswell' } };
    const mm = { ...won('mm', 'passive_openblas_auto'), kexue_gflops: 300, kexue_of_onednn_peak: 0.75 };
    const md = toMarkdown({
      ...report([mm, won('ln', 'passive'), won('ce', 'passive_openblas_auto')]),
      torchSettings: ['passive', 'default', 'passive_openblas_auto', 'default_openblas_auto'],
      peaks,
      peaksWithoutOpenblasOverrides: { ...peaks, sgemmGflops: 350, openblasEnv: {} },
    });
    expect(md).toContain('fastest of its settings (passive, default, passive_openblas_auto, default_openblas_auto)');
    expect(md).toContain('_openblas_auto = without OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE');
    expect(md).toContain('won: passive_openblas_auto 2×, passive 1×');
    expect(md).toMatch(/oneDNN matmul 400\.0 GFLOP\/s[^\n]*OpenBLAS sgemm 200\.0 GFLOP\/s[^\n]*350\.0 GFLOP\/s without OPENBLAS_CORETYPE/);
    expect(md).toMatch(/\| mm \| 1\.00 \| 2\.00 \(passive_openblas_auto\) \|[^\n]*\| 300\.0 GFLOP\/s \(75%\) \|/);

    const plain = toMarkdown(report([won('ln', 'passive')])); // an environment without overrides, or an older report
    expect(plain).toContain('fastest of its settings (passive, default)');
    expect(plain).not.toContain('_openblas_auto');
  });

  it('marks loaded cases in the Markdown instead of printing their ratio as clean, and shows ISA, load and ORT', () => {
    const clean = { ...emptyResult('clean'), kexue_ms: 1, torch_ms: 2, torch_setting: 'passive' as const, ratio: 0.5, ort_ms: 4, ratio_ort: 0.25 };
    const loadedCase = { ...emptyResult('busy'), kexue_ms: 3, torch_ms: 2, torch_setting: 'default' as const, ratio: 1.5, loaded: true,
      load: { foreign_cores_max: 0.8, foreign_cores_median: 0.4, sibling_cores_max: 0, blocks: 4, retried_blocks: 4, loaded_blocks: 2 } };
    const md = toMarkdown(report([clean, loadedCase]));
    expect(md).toContain('ISA avx512f');
    expect(md).toContain('addon SIMD AVX3');
    expect(md).toContain('load average 0.10 0.20 0.30');
    expect(md).toContain('ONNX Runtime 1.31.1');
    expect(md).toMatch(/\| clean \| 1\.00 \| 2\.00 \(passive\) \| 0\.50 \| 4\.00 \| 0\.25 \|/);
    expect(md).toMatch(/\| busy \| 3\.00 \| 2\.00 \(default\) \| 1\.50 \(loaded\) \|/);
    expect(md).toContain('Taken under load');
    expect(md).toMatch(/busy \|[^\n]*\| 0\.80 \|/); // the foreign load column
  });

  it('shows the idle-neighbour and load cases as their own tables', () => {
    const nb: CaseResult = {
      ...emptyResult('idle-neighbour'),
      kexue_ms: 0.5,
      neighbour: { pattern: 'p', workers: 2, alone_ms: 0.4, idlers: { kexue: { ms: 0.5, slowdown: 0.25, idler_cores: 0.6, product_share: 0.01 } } },
    };
    const fp: CaseResult = {
      ...emptyResult('bert-small-load'),
      kexue_ms: 100,
      footprint: { kexue: { load_ms: 100, load_samples: [100], base_rss_bytes: 50 * 2 ** 20, peak_rss_bytes: 200 * 2 ** 20 } },
    };
    const md = toMarkdown(report([nb, fp]));
    expect(md).toContain('| kexue | 0.500 | 25.0% | 0.60 | 1.0% |');
    expect(md).toContain('| bert-small | kexue | 100 | 200 MB | 50 MB |');
    expect(md).not.toMatch(/^\| idle-neighbour \|/m); // not a row of the timing table
  });

  it('writes results.json that reads back with the same shape', () => {
    const json = path.join(tmp, 'results.json');
    const rep = report([{ ...emptyResult('a'), kexue_ms: 1, kexue_samples: [1], load: { foreign_cores_max: 0, foreign_cores_median: 0, sibling_cores_max: 0, blocks: 1, retried_blocks: 0, loaded_blocks: 0 } }]);
    writeReport(json, path.join(tmp, 'results.md'), rep);
    expect(readReport(json)).toEqual(rep);
  });
});

describe('the BERT inference files', () => {
  it('keys the cache folder by the sizes', () => {
    const [small, base] = INFER_MODELS;
    expect(bertFilesDir(small!)).not.toBe(bertFilesDir(base!));
    expect(path.basename(bertFilesDir(small!))).toMatch(/^bert-small-[0-9a-f]{12}$/);
    expect(bertFilesDir(small!)).toBe(bertFilesDir(small!));
  });

  it('counts a forward\'s matrix-product FLOPs', () => {
    const s = { vocab: 10, hidden: 4, layers: 2, heads: 2, ffn: 8 };
    // per token and layer: 4 projections (8h²), FFN (4·h·ffn), attention (4·T·h); the pooler 2h² per sequence
    expect(bertForwardFlops(s, 3, 5)).toBe(3 * 5 * 2 * (8 * 16 + 4 * 4 * 8 + 4 * 5 * 4) + 2 * 3 * 16);
    expect(maxAbsDiff(new Float32Array([1, 2]), new Float32Array([1.5, 1]))).toBe(1);
  });

  it.skipIf(!hasTorch)('a safetensors file written by the PyTorch side reads back in kexue, and kexue\'s in PyTorch', () => {
    const fromPython = path.join(tmp, 'py.safetensors');
    const fromKexue = path.join(tmp, 'kx.safetensors');
    writeFileSync(fromKexue, kx.io.serializeSafetensors({ 'encoder.layer.0.w': kx.tensor(new Float32Array([0.5, -1, 2, 3.25, 1e-8, -7]), [2, 3]) }));
    const out = torchBench([
      'w = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 8 - 0.5',
      `torch_bench.write_safetensors(${JSON.stringify(fromPython)}, {"embeddings.word_embeddings.weight": w, "b": torch.tensor([1.5, -2.0])})`,
      `back = torch_bench.read_safetensors(${JSON.stringify(fromKexue)})`,
      'print(json.dumps({k: v.flatten().tolist() for k, v in back.items()}))',
    ]);
    expect(JSON.parse(out)).toEqual({ 'encoder.layer.0.w': [...new Float32Array([0.5, -1, 2, 3.25, 1e-8, -7])] });
    const read = kx.io.loadSafetensors(fromPython);
    try {
      expect(Object.keys(read).sort()).toEqual(['b', 'embeddings.word_embeddings.weight']);
      expect(read['embeddings.word_embeddings.weight']!.shape).toEqual([3, 4]);
      expect([...read['embeddings.word_embeddings.weight']!.toFloat32Array()]).toEqual(Array.from({ length: 12 }, (_, i) => i / 8 - 0.5));
      expect([...read.b!.toFloat32Array()]).toEqual([1.5, -2]);
    } finally {
      kx.dispose(Object.values(read));
    }
  });
});

describe("issue 19's cases: PyTorch's side is checked against kexue's output", () => {
  it.skipIf(!hasTorch)("PyTorch's whitening is kexue's (columns sign-aligned), and a setup handed another kernel fails", () => {
    const fit = { beta: 1, gamma: 1, k: 6 };
    const x = rand([400, 12], 7);
    const w = Whitening.fit(x, fit);
    const data = path.join(tmp, 'whitening.safetensors');
    const wrong = path.join(tmp, 'whitening-wrong.safetensors');
    const doubled = kx.mul(w.kernel, 2);
    try {
      writeFileSync(data, kx.io.serializeSafetensors({ x, kernel: w.kernel, bias: w.bias }));
      writeFileSync(wrong, kx.io.serializeSafetensors({ x, kernel: doubled, bias: w.bias }));
    } finally {
      kx.dispose([x, doubled]);
      w.dispose();
    }
    const setup = (file: string) => `torch_bench.setup('whitening-fit-10000x768', ${pyJson({ data: file, ...fit })})`;
    expect(Number(torchBench([`print(${setup(data)}.max_abs_diff)`]))).toBeLessThan(1e-5);
    expect(torchBench(['try:', `    ${setup(wrong)}`, 'except ValueError as e:', '    print(e)'])).toMatch(/disagree/);
  });

  it.skipIf(!hasTorch)("PyTorch's sentence vectors are SentenceEncoder's: length-sorted batches, padding, first-last-avg, input order", () => {
    const sizes = { vocab: 21128, hidden: 16, layers: 2, heads: 2, ffn: 32 };
    const weights = path.join(tmp, 'sentence-bert.safetensors');
    torchBench([
      `model = torch_bench.BertModel(${pyJson(sizes)}, pooler=True)`,
      'torch_bench.hf_init(model, 3)',
      `torch_bench.write_safetensors(${JSON.stringify(weights)}, {k: v.contiguous() for k, v in model.state_dict().items()})`,
    ]);
    const maxLength = 8;
    const encoder = new SentenceEncoder(loadKexueBert(sizes, weights), BertTokenizer.fromVocab(BUNDLED_VOCABS.bertBaseChinese), { pooling: 'first-last-avg', batchSize: 2, maxLength });
    const texts = ['花呗', '为什么我已经推过了蚂蚁花呗上面还是有金额产生', '分期', '花呗只能使用分期付款吗', '退款了'];
    const expected = path.join(tmp, 'sentence-vectors.safetensors');
    try {
      const vectors = encoder.encode(texts);
      writeFileSync(expected, kx.io.serializeSafetensors({ vectors }));
      vectors.dispose();
      const ids = texts.map((t) => encoder.tokenizer.encode(t, { maxLength }).ids);
      const args = { config: sizes, weights, ids, pad: encoder.tokenizer.padId, batch: 2, expected };
      expect(Number(torchBench([`print(torch_bench.setup('sentence-encode-10k', ${pyJson(args)}).max_abs_diff)`]))).toBeLessThan(1e-5);
    } finally {
      encoder.dispose();
    }
  });
});
