/** A WordPiece vocabulary: `vocab.txt`, one token a line, the line number (from 0) its id. */
import { readFileSync } from 'node:fs';
import { FormatError, ioError } from '@kexue/core-cuda';

/** Tokens every vocabulary must have: the tokenizers emit them. */
export const REQUIRED_SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]'] as const;

export class Vocab {
  /** Token → id. */
  readonly ids: ReadonlyMap<string, number>;
  /** Id → token. */
  readonly tokens: readonly string[];
  readonly padId: number;
  readonly unkId: number;
  readonly clsId: number;
  readonly sepId: number;
  /** The id of [MASK], or -1 when the vocabulary has none. */
  readonly maskId: number;

  private constructor(tokens: string[], ids: Map<string, number>) {
    this.tokens = tokens;
    this.ids = ids;
    this.padId = ids.get('[PAD]')!;
    this.unkId = ids.get('[UNK]')!;
    this.clsId = ids.get('[CLS]')!;
    this.sepId = ids.get('[SEP]')!;
    this.maskId = ids.get('[MASK]') ?? -1;
  }

  get size(): number {
    return this.tokens.length;
  }

  /**
   * Builds a vocabulary from its tokens in id order. E_FORMAT for an empty token, a duplicate,
   * or a missing [PAD], [UNK], [CLS] or [SEP]; `source` names the file in messages.
   */
  static fromTokens(tokens: readonly string[], source = 'vocabulary'): Vocab {
    const ids = new Map<string, number>();
    tokens.forEach((token, id) => {
      if (token.length === 0) throw new FormatError(`${source}: line ${id + 1} is empty (one token a line expected)`);
      const prev = ids.get(token);
      if (prev !== undefined) {
        throw new FormatError(`${source}: token ${JSON.stringify(token)} on line ${id + 1} duplicates line ${prev + 1}`);
      }
      ids.set(token, id);
    });
    const missing = REQUIRED_SPECIALS.filter((t) => !ids.has(t));
    if (missing.length > 0) throw new FormatError(`${source}: missing special token(s) ${missing.join(', ')}`);
    return new Vocab([...tokens], ids);
  }

  /**
   * Reads `vocab.txt` (UTF-8, '\n' or '\r\n' line ends, an optional BOM, an optional final newline).
   * E_IO when the file cannot be read; E_FORMAT when it is not valid UTF-8 or not a vocabulary.
   */
  static fromFile(path: string): Vocab {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (err) {
      throw ioError(`cannot read vocabulary ${path}`, err);
    }
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
    } catch {
      throw new FormatError(`${path}: not valid UTF-8`);
    }
    const lines = text.split('\n');
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    return Vocab.fromTokens(
      lines.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l)),
      path,
    );
  }
}
