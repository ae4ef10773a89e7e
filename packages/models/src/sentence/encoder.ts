/**
 * SentenceEncoder: sentence vectors from any BERT/RoFormer encoder of the project (a kexue run's
 * checkpoint: `kexue train mlm`, or a task run whose model has such an encoder, as `ner`) or a
 * Hugging Face BERT checkpoint directory (config.json, vocab.txt and model.safetensors or
 * pytorch_model.bin), pooled as ALGORITHMS.md §3.3 says (heads/pooling.ts): cls, pooler (no
 * tanh), last-avg or first-last-avg, the means over real tokens only ([CLS] and [SEP] included).
 *
 * Texts are encoded one sentence each (segment ids 0), in batches of similar lengths (sorted by
 * token count, so little padding is computed), and the vectors come back in the input order.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';

import { ArgumentError, FormatError, tensor, tidy, type Tensor } from '@kexue/core-cuda';

import { BertModel } from '../bert/model.js';
import { pool, type PoolingMode } from '../heads/pooling.js';
import { encoderArch, encoderConfig, loadTokenizer, type ModelConfig } from '../tasks/sections.js';
import type { BertTokenizer } from '../tokenizers/bert.js';
import { checkArchitecture, loadWeights, openRunCheckpoint } from '../train/checkpoint.js';
import { readJson } from '../train/files.js';
import { INDEX_FILE } from '../train/run_dir.js';

/** The poolings of §3.3. */
export const POOLINGS: readonly PoolingMode[] = ['cls', 'pooler', 'last-avg', 'first-last-avg'];

/** How texts become vectors. */
export interface SentenceEncoderOptions {
  /** §3.3's pooling; default 'first-last-avg'. 'pooler' needs a checkpoint with a pooler (a Hugging Face BERT). */
  pooling?: PoolingMode;
  /** Tokens per text, [CLS] and [SEP] included (longer texts are cut); default 64 (§3.2: PAWSX used 128). */
  maxLength?: number;
  /** Texts per forward pass; default 32. */
  batchSize?: number;
}

/** Where a model is loaded. */
export interface SentenceModelOptions extends SentenceEncoderOptions {
  /** Where the model computes: 'cpu' (default), 'cuda', 'cuda:N'. */
  device?: string;
  /** A run's checkpoint: 'best' (default) or 'last'. */
  checkpoint?: 'best' | 'last';
  /** Told when a run has no best checkpoint and its last is used. */
  warn?: (message: string) => void;
}

function positiveInteger(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new ArgumentError(`SentenceEncoder: ${name} must be a positive integer, got ${String(v)}`);
  return v;
}

/** Encodes texts into sentence vectors with a BERT/RoFormer encoder. */
export class SentenceEncoder {
  readonly model: BertModel;
  readonly tokenizer: BertTokenizer;
  readonly pooling: PoolingMode;
  readonly maxLength: number;
  readonly batchSize: number;

  /** Wraps a model (put in eval mode) and its tokenizer; E_ARG for a bad option or 'pooler' on a model without a pooler. */
  constructor(model: BertModel, tokenizer: BertTokenizer, options: SentenceEncoderOptions = {}) {
    const pooling = options.pooling ?? 'first-last-avg';
    if (!POOLINGS.includes(pooling)) throw new ArgumentError(`SentenceEncoder: unknown pooling '${String(pooling)}' (${POOLINGS.join(', ')})`);
    if (pooling === 'pooler' && !model.pooler) throw new ArgumentError("SentenceEncoder: pooling 'pooler' needs a model with a pooler (a Hugging Face BERT checkpoint)");
    this.maxLength = positiveInteger('maxLength', options.maxLength ?? 64);
    if (this.maxLength < 3) throw new ArgumentError(`SentenceEncoder: maxLength must be at least 3 ([CLS], a token, [SEP]), got ${this.maxLength}`);
    this.batchSize = positiveInteger('batchSize', options.batchSize ?? 32);
    this.model = model.eval();
    this.tokenizer = tokenizer;
    this.pooling = pooling;
  }

  /**
   * The encoder of a kexue run (its best checkpoint by default): a run whose checkpoint records a
   * BERT/RoFormer encoder (mlm, ner), with the vocab.txt the checkpoint keeps. E_IO / E_FORMAT for
   * a missing or damaged run, E_FORMAT for a run of another kind of model (a T5).
   */
  static fromRun(runDir: string, options: SentenceModelOptions = {}): SentenceEncoder {
    const { dir, file, task, arch } = openRunCheckpoint(runDir, options.checkpoint ?? 'best', null, options.warn);
    const kind = arch['model.kind'];
    if (kind !== 'bert' && kind !== 'roformer') throw new FormatError(`${runDir} is a ${task} run: its model is not a BERT/RoFormer encoder`);
    const model = (readJson(path.join(dir, 'config.json'), 'checkpoint config') as { model: ModelConfig }).model;
    const tokenizer = loadTokenizer(path.join(dir, 'vocab.txt'));
    checkArchitecture(file, arch, encoderArch(model, tokenizer.vocabSize));
    const encoder = new BertModel(encoderConfig(model, tokenizer.vocabSize), { seed: 0 });
    try {
      // the task's head (an MLM head, GlobalPointer) sits beside the encoder: only the encoder is read
      loadWeights(file, encoder, { prefix: `${kind}.`, partial: true });
      if (options.device) encoder.to(options.device);
      return new SentenceEncoder(encoder, tokenizer, options);
    } catch (err) {
      encoder.dispose();
      throw err;
    }
  }

  /**
   * The encoder of a Hugging Face BERT/RoFormer checkpoint directory (config.json, vocab.txt,
   * model.safetensors or pytorch_model.bin; BertModel.fromPretrained reads it, a pre-training
   * file's heads ignored). The tokenizer lowercases, as bert-base-chinese's does.
   */
  static fromPretrained(dir: string, options: SentenceModelOptions = {}): SentenceEncoder {
    const tokenizer = loadTokenizer(path.join(dir, 'vocab.txt'));
    const model = BertModel.fromPretrained(dir, options.device ? { device: options.device } : {});
    try {
      if (model.config.vocabSize !== tokenizer.vocabSize) {
        throw new FormatError(`${dir}: config.json's vocab_size is ${model.config.vocabSize}, vocab.txt holds ${tokenizer.vocabSize} tokens`);
      }
      return new SentenceEncoder(model, tokenizer, options);
    } catch (err) {
      model.dispose();
      throw err;
    }
  }

  /** A kexue run directory (it has checkpoints.json) by fromRun, any other directory by fromPretrained. */
  static open(source: string, options: SentenceModelOptions = {}): SentenceEncoder {
    return existsSync(path.join(source, INDEX_FILE)) ? SentenceEncoder.fromRun(source, options) : SentenceEncoder.fromPretrained(source, options);
  }

  /** The dimension of the vectors (the encoder's hidden size). */
  get dimension(): number {
    return this.model.config.hiddenSize;
  }

  /**
   * The sentence vectors of texts: float32 [N, dimension] on the CPU, row i for texts[i]. Each
   * text is cut to `options.maxLength` tokens (default the encoder's), and never beyond a BERT's
   * position table (config.maxPositions).
   */
  encode(texts: readonly string[], options: { maxLength?: number } = {}): Tensor {
    const c = this.model.config;
    const requested = positiveInteger('maxLength', options.maxLength ?? this.maxLength);
    const maxLength = c.kind === 'bert' ? Math.min(requested, c.maxPositions) : requested;
    const ids = texts.map((t) => this.tokenizer.encode(t, { maxLength }).ids);
    // longest first, so the first batch shows at once whether the largest fits in memory
    const order = ids.map((_, i) => i).sort((i, j) => ids[j]!.length - ids[i]!.length || i - j);
    const H = this.dimension;
    const out = new Float32Array(texts.length * H);
    const device = this.model.device;
    for (let start = 0; start < order.length; start += this.batchSize) {
      const rows = order.slice(start, start + this.batchSize);
      const B = rows.length;
      const T = ids[rows[0]!]!.length;
      const flat = new Int32Array(B * T).fill(this.tokenizer.padId);
      const mask = new Uint8Array(B * T);
      rows.forEach((r, b) => {
        ids[r]!.forEach((id, t) => {
          flat[b * T + t] = id;
          mask[b * T + t] = 1;
        });
      });
      const vectors = tidy(() => {
        const m = tensor(mask, [B, T], { dtype: 'uint8', device });
        const encoded = this.model.forward(tensor(flat, [B, T], { dtype: 'int32', device }), {
          attentionMask: m,
          hiddenStates: this.pooling === 'first-last-avg',
        });
        return pool(encoded, this.pooling, m).toFloat32Array();
      });
      rows.forEach((r, b) => out.set(vectors.subarray(b * H, (b + 1) * H), r * H));
    }
    return tensor(out, [texts.length, H]);
  }

  /** Frees the model's weights. */
  dispose(): void {
    this.model.dispose();
  }
}
