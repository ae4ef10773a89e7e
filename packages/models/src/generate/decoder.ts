/** What generate() needs of a model: an incremental decoding state over a batch of rows. */
import type { Tensor } from '@kexue/core-cuda';

/**
 * The decoding state of a batch of rows (an encoder's output and a KV cache, for T5). Each step
 * feeds one token per row; rows may be selected (kept, reordered, repeated) between steps.
 */
export interface DecodingState {
  readonly rows: number;
  /** The token every row starts from. */
  readonly startTokenId: number;
  /** Feeds one token per row; returns the next-token logits [rows, vocab], owned by the caller. */
  step(ids: ArrayLike<number>): Tensor;
  /** Keeps these rows, in this order (repeats allowed). */
  select(rows: readonly number[]): void;
  dispose(): void;
}

/** A model generate() can decode with: it starts a decoding state from encoder inputs. */
export interface Seq2SeqGenerator {
  /** The end token when options name none (T5: eos_token_id). */
  readonly defaultEndTokenId: number;
  startDecoding(inputIds: Tensor, attentionMask?: Tensor | null): DecodingState;
}
