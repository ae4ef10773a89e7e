/**
 * BERT inference on three sides with the same weights: kexue (bert_kexue.ts), ONNX Runtime
 * (onnxruntime-node, what transformers.js runs on: bert_ort.ts) and PyTorch (torch_bench.py).
 * This module imports neither kexue nor ONNX Runtime, so that a fresh process measuring one side
 * (footprint.ts) loads that side's library alone. The weights are made once in PyTorch with Hugging Face's initialisation and BertModel names, and
 * written as model.safetensors beside model.onnx (torch.onnx.export of the same module) under
 * node_modules/.cache/kexue-bench/<model>-<key>, the key a hash of the sizes, the seed and
 * torch_bench.py itself.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';

import { BENCH_CACHE } from './peaks.js';
import { randInt } from './random.js';
import { benchPython, TORCH_SCRIPT } from './torch.js';

/** BERT sizes, with torch_bench.py's key names (they are passed to it as they are). */
export interface BertSizes {
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  ffn: number;
}

/** A model of the inference cases. */
export interface InferModel {
  name: 'bert-small' | 'bert-base';
  sizes: BertSizes;
}

export const INFER_MODELS: readonly InferModel[] = [
  { name: 'bert-small', sizes: { vocab: 21128, hidden: 256, layers: 4, heads: 4, ffn: 1024 } },
  { name: 'bert-base', sizes: { vocab: 21128, hidden: 768, layers: 12, heads: 12, ffn: 3072 } },
];

/** The batch × sequence points every inference case is timed at. */
export const INFER_POINTS: readonly (readonly [batch: number, seq: number])[] = [
  [1, 32],
  [1, 128],
  [32, 128],
];

/** Seed of the weights PyTorch makes. */
const WEIGHT_SEED = 0;

/** Files of one model: the weights (safetensors) and the ONNX graph. */
export interface BertFiles {
  dir: string;
  weights: string;
  onnx: string;
}

/** The cache folder of a model: its name and a hash of what the files are made from. */
export function bertFilesDir(model: InferModel, script: string = TORCH_SCRIPT): string {
  const key = createHash('sha256').update(JSON.stringify({ sizes: model.sizes, seed: WEIGHT_SEED })).update(readFileSync(script)).digest('hex').slice(0, 12);
  return path.join(BENCH_CACHE, `${model.name}-${key}`);
}

/** The model's files, made by torch_bench.py export-bert on first use; throws with its reason. */
export function ensureBertFiles(model: InferModel): BertFiles {
  const dir = bertFilesDir(model);
  const files = { dir, weights: path.join(dir, 'model.safetensors'), onnx: path.join(dir, 'model.onnx') };
  if (existsSync(files.weights) && existsSync(files.onnx)) return files;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const out = execFileSync(benchPython(), [TORCH_SCRIPT, 'export-bert', JSON.stringify({ config: model.sizes, seed: WEIGHT_SEED, dir: tmp })], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 1 << 26,
  });
  const reply = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { ok?: boolean; error?: string };
  if (!reply.ok) throw new Error(`making ${model.name}'s weights with PyTorch: ${reply.error ?? out}`);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return files;
}

/** Token ids of one point: deterministic, the same on every run; every token real (mask all ones). */
export interface BertInputs {
  batch: number;
  seq: number;
  ids: Int32Array;
}

/** The inputs of a point (ids from xorshift, seed 2). */
export function bertInputs(sizes: BertSizes, batch: number, seq: number): BertInputs {
  return { batch, seq, ids: randInt(batch * seq, sizes.vocab, 2) };
}

/** Largest |a − b| over two equally long arrays. */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new RangeError(`maxAbsDiff: ${a.length} against ${b.length} elements`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Matrix-product FLOPs of one forward over [batch, seq]: the layers' projections, attention, the pooler. */
export function bertForwardFlops(s: BertSizes, batch: number, seq: number): number {
  const perTokenLayer = 8 * s.hidden * s.hidden + 4 * s.hidden * s.ffn + 4 * seq * s.hidden;
  return batch * seq * s.layers * perTokenLayer + 2 * batch * s.hidden * s.hidden;
}
