/** CLI-level errors and exit codes. */

export const EXIT_OK = 0;
/** A failure while running (a KexueError: unreadable file, malformed data...). */
export const EXIT_FAILURE = 1;
/** The command line itself is wrong: unknown command or option, missing or bad argument. */
export const EXIT_USAGE = 2;

/** A mistake in the command line; printed with a pointer to --help, exit code 2. */
export class UsageError extends Error {
  /** The command whose help to point at (none for the top level). */
  readonly command: string | undefined;
  constructor(message: string, command?: string) {
    super(message);
    this.name = 'UsageError';
    this.command = command;
  }
}

/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length]!;
}

/** The closest candidate within distance 2, for "did you mean ...?". */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const c of candidates) {
    const dist = editDistance(word, c);
    if (dist < bestD) {
      best = c;
      bestD = dist;
    }
  }
  return best;
}
