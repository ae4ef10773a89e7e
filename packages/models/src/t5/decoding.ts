/**
 * Incremental decoding for T5 with a KV cache: the encoder runs once, each decoder block's
 * cross-attention keys and values are computed once from its output, and each step feeds one new
 * token per row, appending its self-attention keys and values, so that a step costs O(its
 * position), not a full recompute. Rows can be reordered, repeated or dropped between steps (a
 * beam's parents, finished rows), and every cached tensor is freed by dispose().
 */
import { ArgumentError, ShapeError, dispose, embedding, keep, reshape, tensor, tidy, type Tensor } from '@kexue/core-cuda';

import type { DecodingState } from '../generate/decoder.js';
import type { BlockCache, T5ForConditionalGeneration } from './model.js';
import { normed, residualStream } from './stream.js';

/** Rows `rows` of t along axis 0 (an embedding lookup on t seen as a table [rows, rest]). */
function gatherRows(t: Tensor, rows: Int32Array): Tensor {
  const shape = t.shape;
  const table = reshape(t, [shape[0]!, shape.slice(1).reduce((a, b) => a * b, 1)]);
  return reshape(embedding(tensor(rows, [rows.length], { dtype: 'int32', device: t.device }), table), [rows.length, ...shape.slice(1)]);
}

export class T5Decoding implements DecodingState {
  readonly #model: T5ForConditionalGeneration;
  readonly #caches: BlockCache[];
  /** The encoder's padding mask per row (1 = real), kept on the host to rebuild as rows move. */
  #encoderMask: Uint8Array[];
  /** Each row's input row: its cross-attention keys and values, and its mask, depend on nothing else. */
  #source: number[];
  #mask: Tensor | null = null;
  #length = 0;
  #disposed = false;

  /** Encodes inputIds (int32 [B, S]) with their padding mask and caches every block's cross-attention keys and values. */
  constructor(model: T5ForConditionalGeneration, inputIds: Tensor, attentionMask: Tensor | null = null) {
    this.#model = model;
    const [B, S] = inputIds.shape as [number, number];
    const encoderOutput = model.encode(inputIds, attentionMask);
    this.#caches = model.decoder.block.items.map((block) => {
      const kv = tidy(() => block.crossKeyValues(encoderOutput));
      return { self: null, cross: kv ? { k: keep(kv.k), v: keep(kv.v) } : null };
    });
    encoderOutput.dispose();
    const maskValues = attentionMask ? attentionMask.toFloat32Array() : null;
    this.#encoderMask = Array.from({ length: B }, (_, b) => Uint8Array.from({ length: S }, (_, j) => (maskValues ? (maskValues[b * S + j] !== 0 ? 1 : 0) : 1)));
    this.#source = Array.from({ length: B }, (_, b) => b);
    this.#rebuildMask();
  }

  /** Rows being decoded. */
  get rows(): number {
    return this.#encoderMask.length;
  }

  /** Tokens fed so far per row. */
  get length(): number {
    return this.#length;
  }

  /** The decoder's first token (decoder_start_token_id). */
  get startTokenId(): number {
    return this.#model.config.decoderStartTokenId;
  }

  /** Feeds one token per row (ids: one per row) and returns the next-token logits [rows, vocab] (the caller owns them). */
  step(ids: ArrayLike<number>): Tensor {
    this.#check();
    if (ids.length !== this.rows) throw new ShapeError(`T5Decoding.step: expected ${this.rows} token ids (one per row), got ${ids.length}`);
    const model = this.#model;
    const decoder = model.decoder;
    const position = this.#length;
    const logits = tidy(() => {
      const device = model.shared.weight.device;
      const x0 = tensor(Int32Array.from(ids), [this.rows, 1], { dtype: 'int32', device });
      const S = this.#encoderMask[0]?.length ?? 0;
      const biases = {
        self: decoder.positionBias(1, position + 1, position),
        cross: model.config.crossPositionBias ? decoder.positionBias(1, S, position) : null,
        crossMask: this.#mask,
      };
      let x = residualStream(decoder.dropout.forward(model.shared.forward(x0)));
      decoder.block.items.forEach((block, i) => {
        x = block.step(x, this.#caches[i]!, biases);
      });
      const out = decoder.dropout.forward(normed(decoder.final_layer_norm, x));
      return reshape(model.logits(out), [this.rows, model.config.vocabSize]);
    });
    this.#length += 1;
    return logits;
  }

  /**
   * Keeps rows `rows` of the state, in that order (a row may repeat: a beam's children share a
   * parent). The cross-attention caches move only when the rows' input rows change: a beam search
   * that keeps its beam counts reorders beams within their input row, and copies only the
   * self-attention caches.
   */
  select(rows: readonly number[]): void {
    this.#check();
    for (const r of rows) if (!Number.isInteger(r) || r < 0 || r >= this.rows) throw new ArgumentError(`T5Decoding.select: row ${r} is not in [0, ${this.rows})`);
    const index = Int32Array.from(rows);
    const source = rows.map((r) => this.#source[r]!);
    const crossMoves = source.length !== this.#source.length || source.some((s, i) => s !== this.#source[i]);
    for (const cache of this.#caches) {
      for (const kv of crossMoves ? [cache.self, cache.cross] : [cache.self]) {
        if (!kv) continue;
        const k = keep(tidy(() => gatherRows(kv.k, index)));
        const v = keep(tidy(() => gatherRows(kv.v, index)));
        dispose([kv.k, kv.v]);
        kv.k = k;
        kv.v = v;
      }
    }
    this.#source = source;
    if (!crossMoves) return;
    this.#encoderMask = rows.map((r) => this.#encoderMask[r]!);
    this.#rebuildMask();
  }

  /** Frees every cached tensor; the state cannot step afterwards. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const cache of this.#caches) dispose([cache.self?.k, cache.self?.v, cache.cross?.k, cache.cross?.v].filter((t): t is Tensor => t !== undefined));
    this.#mask?.dispose();
  }

  #check(): void {
    if (this.#disposed) throw new ArgumentError('T5Decoding: the state was disposed');
  }

  #rebuildMask(): void {
    this.#mask?.dispose();
    const S = this.#encoderMask[0]?.length ?? 0;
    const flat = new Uint8Array(this.rows * S);
    this.#encoderMask.forEach((m, r) => flat.set(m, r * S));
    this.#mask = keep(tensor(flat, [this.rows, 1, 1, S], { dtype: 'uint8', device: this.#model.shared.weight.device }));
  }
}
