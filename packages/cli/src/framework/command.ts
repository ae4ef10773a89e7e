/**
 * What a `kexue` command is: a name, a one-line summary, its options and positional arguments,
 * and a `run` that gets the parsed arguments and an output context; or a group of commands chosen
 * by the next argument (`kexue train ner`), loaded when needed. Commands are plain objects listed
 * in src/commands/index.ts; the framework parses, validates and prints help for them.
 */
import type { CommandOption, CommandPositional } from '@kexue/models';

/** An option: `--name VALUE`, `--flag`, with its type, choices or rule, default and help. */
export type OptionSpec = CommandOption;
export type OptionType = CommandOption['type'];
export type PositionalSpec = CommandPositional;

/** Parsed options by camelCase name (`max-length` → `maxLength`), and the positionals by name. */
export interface ParsedArgs {
  options: Record<string, string | number | boolean | Array<string | number> | undefined>;
  positionals: Record<string, string | string[] | undefined>;
}

/** Where a command writes, and what it may read (so tests can run commands in-process). */
export interface CommandContext {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /**
   * Reads all of standard input (for commands that accept '-'): its lines joined by '\n', decoded
   * as data files are (UTF-8, strictly: E_FORMAT naming the line that is not; a BOM and the '\r'
   * of each '\r\n' removed).
   */
  readStdin: () => Promise<string>;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Whether stderr is a terminal, and its width (progress bars); default: no terminal. */
  terminal?: { columns: number };
}

export interface LeafCommand {
  /** The words after `kexue`: 'tokenize', 'train ner'. */
  name: string;
  summary: string;
  /** More help text, shown by `kexue <command> --help` after the usage. */
  details?: string;
  options: OptionSpec[];
  positionals: PositionalSpec[];
  /** Help that depends on the arguments given with --help (default: commandHelp). */
  help?: (argv: readonly string[]) => string;
  /** Returns the exit code (0 when it returns nothing). */
  run(args: ParsedArgs, ctx: CommandContext): Promise<number | void>;
}

/** Commands chosen by the next argument: `kexue train <task>`. */
export interface CommandGroup {
  name: string;
  summary: string;
  /** What the next argument names ('task'). */
  member: string;
  /** Shown after the list in `kexue <group> --help`. */
  details?: string;
  subcommands(): Promise<readonly Command[]>;
}

export type Command = LeafCommand | CommandGroup;

export const isGroup = (c: Command): c is CommandGroup => 'subcommands' in c;

/** kebab-case → camelCase. */
export function camel(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}
