/**
 * Tag sequences to entity spans, for the BIO and BMES schemes (BMES: B-egin, M-iddle, E-nd,
 * S-ingle, O-utside; BIO: B-egin, I-nside, O-utside).
 *
 * Invalid sequences are decoded the way conlleval and seqeval (default mode) do, and the first
 * problem is reported so that a reader can count the repair or refuse the record:
 * - an I-/M-/E- tag that does not continue an open entity of its type starts a new entity;
 * - BMES only: an entity still open at a B-, S-, O- tag or at the end of the sentence (no E-) is
 *   closed there.
 * The real Resume and Weibo training files contain such sequences (sentences split inside an
 * entity), which is why readers repair them by default.
 */

export type TagScheme = 'bio' | 'bmes';

/** A decoded entity over tag positions: [start, end) in tag indices. */
export interface TagSpan {
  type: string;
  start: number;
  end: number;
}

/** The first invalid transition of a sequence: the tag index it was found at and what is wrong. */
export interface TagProblem {
  index: number;
  reason: string;
}

export interface DecodedTags {
  spans: TagSpan[];
  /** Set when the sequence was invalid and had to be repaired (the first problem). */
  problem?: TagProblem;
}

const PREFIXES: Record<TagScheme, string> = { bio: 'BI', bmes: 'BMES' };

/** Whether `tag` is 'O' or '<prefix>-<type>' with a prefix of the scheme and a non-empty type. */
export function isValidTag(tag: string, scheme: TagScheme): boolean {
  if (tag === 'O') return true;
  return tag.length > 2 && tag[1] === '-' && PREFIXES[scheme].includes(tag[0]!);
}

/** Decodes a valid-tag sequence (see isValidTag) into entity spans, repairing invalid transitions. */
export function decodeTags(tags: readonly string[], scheme: TagScheme): DecodedTags {
  const spans: TagSpan[] = [];
  let problem: TagProblem | undefined;
  const report = (index: number, reason: string) => {
    problem ??= { index, reason };
  };
  let openType: string | undefined;
  let openStart = 0;
  const close = (end: number) => {
    if (openType !== undefined) spans.push({ type: openType, start: openStart, end });
    openType = undefined;
  };
  const open = (type: string, start: number) => {
    openType = type;
    openStart = start;
  };
  const bmes = scheme === 'bmes';
  const unclosed = (i: number) => {
    if (bmes && openType !== undefined) report(i, `entity ${openType} opened at tag ${openStart + 1} has no E- tag`);
  };
  for (let i = 0; i < tags.length; i++) {
    const tag = tags[i]!;
    if (tag === 'O') {
      unclosed(i);
      close(i);
      continue;
    }
    const prefix = tag[0];
    const type = tag.slice(2);
    if (prefix === 'B' || prefix === 'S') {
      unclosed(i);
      close(i);
      open(type, i);
      if (prefix === 'S') close(i + 1);
      continue;
    }
    // I, M or E: continues an open entity of the same type, or starts one (repair).
    if (openType !== type) {
      report(i, `${tag} does not follow B-${type}${bmes ? ` or M-${type}` : ` or I-${type}`}`);
      unclosed(i);
      close(i);
      open(type, i);
    }
    if (prefix === 'E') close(i + 1);
  }
  unclosed(tags.length - 1);
  close(tags.length);
  return problem ? { spans, problem } : { spans };
}
