/** What the WordPiece-vocabulary tokenizers share: the vocabulary, encode/encodeBatch/decode. */
import { ArgumentError } from '@kexue/core-cuda';
import { decodeTokens } from './decode.js';
import {
  buildEncoding, padEncoding, resolveOptions, type EncodeBatchOptions, type EncodeOptions, type Encoding,
} from './encoding.js';
import type { Pieces } from './pieces.js';
import type { Vocab } from './vocab.js';

function checkText(text: unknown, what: string): string {
  if (typeof text !== 'string') throw new ArgumentError(`${what} must be a string, got ${text === null ? 'null' : typeof text}`);
  return text;
}

export abstract class WordPieceTokenizerBase {
  readonly vocab: Vocab;

  protected constructor(vocab: Vocab) {
    this.vocab = vocab;
  }

  /** The text's tokens without special tokens, with spans in `text`. */
  protected abstract pieces(text: string): Pieces;

  get vocabSize(): number {
    return this.vocab.size;
  }
  get padId(): number {
    return this.vocab.padId;
  }
  get unkId(): number {
    return this.vocab.unkId;
  }
  get clsId(): number {
    return this.vocab.clsId;
  }
  get sepId(): number {
    return this.vocab.sepId;
  }
  /** -1 when the vocabulary has no [MASK]. */
  get maskId(): number {
    return this.vocab.maskId;
  }

  /** The id of a token, or undefined when it is not in the vocabulary. */
  tokenToId(token: string): number | undefined {
    return this.vocab.ids.get(token);
  }

  /** The token of an id (E_ARG outside [0, vocabSize)). */
  idToToken(id: number): string {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocab.size) {
      throw new ArgumentError(`token id ${id} is outside [0, ${this.vocab.size})`);
    }
    return this.vocab.tokens[id]!;
  }

  /** The tokens of a text, without [CLS]/[SEP]. */
  tokenize(text: string): string[] {
    return this.pieces(checkText(text, 'text')).tokens;
  }

  /**
   * Encodes a text (and optionally a pair): [CLS] text [SEP] (pair [SEP]), with ids, tokens,
   * segment ids, offsets ([start, end) in UTF-16 code units of the input, [0, 0] for special
   * tokens and padding) and the attention mask. E_ARG for a non-string text or bad options.
   */
  encode(text: string, options?: EncodeOptions): Encoding {
    const opts = resolveOptions(options, false);
    const a = this.pieces(checkText(text, 'text'));
    const pair = options?.pair;
    const b = pair === undefined ? null : this.pieces(checkText(pair, 'pair'));
    return buildEncoding(this.vocab, a, b, opts);
  }

  /**
   * Encodes several texts (a string, or a [text, pair] tuple each) with the same options;
   * `padding: 'longest'` pads them all to the longest.
   */
  encodeBatch(inputs: ReadonlyArray<string | readonly [string, string]>, options?: EncodeBatchOptions): Encoding[] {
    if (!Array.isArray(inputs)) throw new ArgumentError('encodeBatch expects an array of texts or [text, pair] tuples');
    const opts = resolveOptions(options, true);
    const out = inputs.map((input, i) => {
      if (typeof input === 'string') return buildEncoding(this.vocab, this.pieces(input), null, opts);
      if (Array.isArray(input) && input.length === 2) {
        const a = this.pieces(checkText(input[0], `inputs[${i}][0]`));
        const b = this.pieces(checkText(input[1], `inputs[${i}][1]`));
        return buildEncoding(this.vocab, a, b, opts);
      }
      throw new ArgumentError(`inputs[${i}] must be a string or a [text, pair] tuple`);
    });
    if (opts.padding === 'longest') {
      const longest = out.reduce((m, e) => Math.max(m, e.ids.length), 0);
      for (const e of out) padEncoding(this.vocab, e, longest);
    }
    return out;
  }

  /** Text from ids, as bert4keras decodes (special tokens `[...]` dropped). E_ARG for a bad id. */
  decode(ids: ArrayLike<number>): string {
    if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number') {
      throw new ArgumentError('decode expects an array of token ids');
    }
    const tokens: string[] = [];
    for (let i = 0; i < ids.length; i++) tokens.push(this.idToToken(ids[i]!));
    return decodeTokens(tokens);
  }
}
