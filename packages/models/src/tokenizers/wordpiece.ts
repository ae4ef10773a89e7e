/** Greedy longest-match-first WordPiece with the '##' continuation prefix, in its two flavours. */
import { fromCodePoints } from './unicode.js';
import type { Chars, Pieces } from './pieces.js';
import type { Vocab } from './vocab.js';

export const CONTINUATION = '##';

/**
 * What happens to a word that cannot be split into vocabulary pieces:
 * - 'hf' (Hugging Face / Google BERT): the whole word becomes one [UNK]; a word longer than
 *   `maxChars` (100) code points is [UNK] at once.
 * - 'b4k' (bert4keras, the T5 PEGASUS reference): the character where matching fails becomes a
 *   piece of its own ([UNK] unless it is in the vocabulary) and matching goes on after it; a word
 *   longer than `maxChars` (200) code points is kept whole (so [UNK] unless in the vocabulary).
 */
export type WordPieceMode = 'hf' | 'b4k';

/** Splits the word chars[from, to) into pieces appended to `out` (spans from chars' spans). */
export function wordPiece(vocab: Vocab, chars: Chars, from: number, to: number, mode: WordPieceMode, maxChars: number, out: Pieces): void {
  const n = to - from;
  if (n <= 0) return;
  const { starts, ends } = chars;
  const word = fromCodePoints(chars.cps, from, to);
  if (n > maxChars) {
    const id = mode === 'hf' ? vocab.unkId : (vocab.ids.get(word) ?? vocab.unkId);
    out.push(id, vocab.tokens[id]!, starts[from]!, ends[to - 1]!);
    return;
  }
  // UTF-16 offset of each code point boundary of the word.
  const bounds = new Array<number>(n + 1);
  bounds[0] = 0;
  for (let k = 0; k < n; k++) bounds[k + 1] = bounds[k]! + (chars.cps[from + k]! >= 0x10000 ? 2 : 1);
  const mark = out.length;
  let start = 0;
  while (start < n) {
    let end = n;
    let id: number | undefined;
    while (start < end) {
      const sub = word.slice(bounds[start], bounds[end]);
      id = vocab.ids.get(start > 0 ? CONTINUATION + sub : sub);
      if (id !== undefined) break;
      end--;
    }
    if (id === undefined) {
      if (mode === 'hf') {
        out.ids.length = out.tokens.length = out.starts.length = out.ends.length = mark;
        out.push(vocab.unkId, vocab.tokens[vocab.unkId]!, starts[from]!, ends[to - 1]!);
        return;
      }
      end = start + 1;
      id = vocab.unkId;
    }
    out.push(id, vocab.tokens[id]!, starts[from + start]!, ends[from + end - 1]!);
    start = end;
  }
}
