/**
 * The two growing lists the tokenizers work on: normalized characters, each with the span of the
 * original text it came from, and the pieces (tokens) made from them, each with its span.
 * Spans are [start, end) in UTF-16 code units of the original string (JS string indices).
 */

/** Normalized code points with their original spans. */
export class Chars {
  cps: number[] = [];
  starts: number[] = [];
  ends: number[] = [];

  get length(): number {
    return this.cps.length;
  }

  push(cp: number, start: number, end: number): void {
    this.cps.push(cp);
    this.starts.push(start);
    this.ends.push(end);
  }
}

/** Tokens with ids and original spans. */
export class Pieces {
  ids: number[] = [];
  tokens: string[] = [];
  starts: number[] = [];
  ends: number[] = [];

  get length(): number {
    return this.ids.length;
  }

  push(id: number, token: string, start: number, end: number): void {
    this.ids.push(id);
    this.tokens.push(token);
    this.starts.push(start);
    this.ends.push(end);
  }
}
