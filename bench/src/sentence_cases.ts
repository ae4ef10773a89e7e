/**
 * Issue 19's speed cases: SentenceEncoder.encode of 10,000 real sentences with BERT-small, and
 * Whitening.fit on 10,000 × 768 vectors, each beside PyTorch doing the same work
 * (torch_bench.py's sentence_vectors and whitening_fit). kexue's output is handed to PyTorch's
 * setup in a safetensors file; PyTorch answers how far its own output is (max_abs_diff_vs_torch)
 * and fails its setup beyond torch_bench.py's AGREEMENT_TOLERANCE, so both sides are timed on
 * the same computation.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import * as kx from '@kexue/core-cuda';
import { BertTokenizer, BUNDLED_VOCABS, DEFAULT_STS_DATA, readSentencePairs, SentenceEncoder, Whitening } from '@kexue/models';

import { ensureBertFiles, INFER_MODELS } from './bert_files.js';
import { loadKexueBert } from './bert_kexue.js';
import type { TimedCase } from './cases.js';
import { rand } from './random.js';

/** Tensors written for torch_bench.py's setup (too large for a JSON line), in a fresh temporary folder that remove() deletes. */
function handOver(tensors: Record<string, kx.Tensor>): { file: string; remove: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kexue-bench-'));
  const file = path.join(dir, 'kexue.safetensors');
  writeFileSync(file, kx.io.serializeSafetensors(tensors));
  return { file, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The encoding case: ATEC's pairs read, and the encoder's options. */
const ENCODE = { pairs: 5000, pooling: 'first-last-avg', batchSize: 64, maxLength: 64 } as const;

/** Both sentences of each of the first `pairs` pairs of ATEC's valid split (../shared/data/sts, as `kexue eval sts` reads it). */
async function atecSentences(pairs: number): Promise<string[]> {
  const file = path.join(DEFAULT_STS_DATA, 'ATEC', 'ATEC.valid.data');
  const texts: string[] = [];
  for await (const pair of readSentencePairs(file)) {
    texts.push(pair.a, pair.b);
    if (texts.length === 2 * pairs) return texts;
  }
  throw new kx.ArgumentError(`${file} holds ${texts.length / 2} sentence pairs; the case reads ${pairs}`);
}

export function sentenceEncodeCase(): TimedCase {
  const model = INFER_MODELS.find((m) => m.name === 'bert-small')!;
  const s = model.sizes;
  const { pairs, pooling, batchSize, maxLength } = ENCODE;
  return {
    name: 'sentence-encode-10k',
    what:
      `SentenceEncoder.encode of ${2 * pairs} sentences (both sides of ATEC.valid's first ${pairs} pairs) with BERT-small (hidden ${s.hidden}, ` +
      `${s.layers} layers, ${s.heads} heads, FFN ${s.ffn}; bert-small-infer's weights), ${pooling}, at most ${maxLength} tokens, ` +
      `batches of ${batchSize} sorted by length, float32 [${2 * pairs}, ${s.hidden}] out; kexue's time includes its tokenization ` +
      '(the bundled bert-base-chinese vocabulary), PyTorch is given those token ids',
    heavy: true,
    async setup() {
      const files = ensureBertFiles(model);
      const texts = await atecSentences(pairs);
      const encoder = new SentenceEncoder(loadKexueBert(s, files.weights), BertTokenizer.fromVocab(BUNDLED_VOCABS.bertBaseChinese), { pooling, batchSize, maxLength });
      const ids = texts.map((t) => encoder.tokenizer.encode(t, { maxLength }).ids);
      const vectors = encoder.encode(texts);
      const handover = handOver({ vectors });
      vectors.dispose();
      return {
        run: () => encoder.encode(texts).dispose(),
        dispose: () => {
          encoder.dispose();
          handover.remove();
        },
        torchArgs: { config: s, weights: files.weights, ids, pad: encoder.tokenizer.padId, batch: batchSize, expected: handover.file },
      };
    },
  };
}

/** The whitening case: the vectors' shape and seed, and the fit's hyper-parameters (the original BERT-whitening, §3.2's k for 768). */
const WHITEN = { rows: 10_000, dim: 768, seed: 51, fit: { beta: 1, gamma: 1, k: 256 } } as const;

export function whiteningFitCase(): TimedCase {
  const { rows, dim, seed, fit } = WHITEN;
  return {
    name: `whitening-fit-${rows}x${dim}`,
    what:
      `Whitening.fit (β = ${fit.beta}, γ = ${fit.gamma}, k = ${fit.k}) of a fixed-seed uniform(−1, 1) [${rows}, ${dim}] float32 matrix: ` +
      'mean and covariance in float64, eigh, kernel and bias; PyTorch: the same in float64 (x.double(), (x − μ)ᵀ(x − μ)/N as one matmul, torch.linalg.eigh)',
    setup() {
      const x = rand([rows, dim], seed);
      const fitted = Whitening.fit(x, fit);
      const handover = handOver({ x, kernel: fitted.kernel, bias: fitted.bias });
      fitted.dispose();
      return {
        run: () => Whitening.fit(x, fit).dispose(),
        dispose: () => {
          x.dispose();
          handover.remove();
        },
        torchArgs: { data: handover.file, ...fit },
      };
    },
  };
}
