/**
 * What a `kexue` command is: a name, a one-line summary, its options and positional arguments,
 * and a `run` that gets the parsed arguments and an output context. Commands are plain objects
 * listed in src/commands/index.ts; the framework parses, validates and prints help for them.
 */

export type OptionType = 'boolean' | 'string' | 'number' | 'integer';

export interface OptionSpec {
  /** Long name without dashes, kebab-case: `max-length` is `--max-length`. */
  name: string;
  type: OptionType;
  description: string;
  /** A one-letter alias: `-v`. */
  short?: string;
  /** The value's name in help (`--vocab FILE`). */
  valueName?: string;
  /** Shown in help and used when the option is absent. */
  default?: string | number | boolean;
  required?: boolean;
  /** May be given several times; the values are collected in an array. */
  repeatable?: boolean;
}

export interface PositionalSpec {
  name: string;
  description: string;
  required?: boolean;
  /** Takes every remaining argument (only the last positional). */
  variadic?: boolean;
}

/** Parsed options by camelCase name (`max-length` → `maxLength`), and the positionals by name. */
export interface ParsedArgs {
  options: Record<string, string | number | boolean | Array<string | number> | undefined>;
  positionals: Record<string, string | string[] | undefined>;
}

/** Where a command writes, and what it may read (so tests can run commands in-process). */
export interface CommandContext {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Reads all of standard input (for commands that accept '-'). */
  readStdin: () => Promise<string>;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export interface Command {
  name: string;
  summary: string;
  /** More help text, shown by `kexue <command> --help` after the usage. */
  details?: string;
  options: OptionSpec[];
  positionals: PositionalSpec[];
  /** Returns the exit code (0 when it returns nothing). */
  run(args: ParsedArgs, ctx: CommandContext): Promise<number | void>;
}

/** kebab-case → camelCase. */
export function camel(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}
