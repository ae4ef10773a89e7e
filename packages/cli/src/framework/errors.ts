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
