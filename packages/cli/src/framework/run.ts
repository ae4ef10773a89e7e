/**
 * Dispatch: finds the command (through groups: `kexue train ner`), handles --help/--version,
 * parses the arguments, runs the command, and turns errors into messages and exit codes (usage 2,
 * KexueError 1 with its code).
 */
import { suggest } from '@kexue/models/suggest';

import { parseArgs } from './args.js';
import { isGroup, type Command, type CommandContext } from './command.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError } from './errors.js';
import { commandHelp, globalHelp, groupHelp } from './help.js';

export interface CliSpec {
  commands: readonly Command[];
  version: string;
}

function isHelp(arg: string): boolean {
  return arg === '-h' || arg === '--help';
}

/** Runs one command line; returns the exit code. */
export async function runCli(spec: CliSpec, argv: readonly string[], ctx: CommandContext): Promise<number> {
  try {
    const [first, ...rest] = argv;
    if (first === undefined || isHelp(first)) {
      // No arguments at all is a usage mistake: the help goes to stderr, exit code 2.
      (first === undefined ? ctx.stderr : ctx.stdout)(globalHelp(spec.commands, spec.version));
      return first === undefined ? EXIT_USAGE : EXIT_OK;
    }
    // `kexue help X Y` is `kexue X Y --help`
    if (first === 'help') return rest.length ? runCli(spec, [...rest, '--help'], ctx) : runCli(spec, ['--help'], ctx);
    if (first === '-V' || first === '--version') {
      ctx.stdout(`${spec.version}\n`);
      return EXIT_OK;
    }
    if (first.startsWith('-')) throw new UsageError(`unknown option '${first}' (options come after the command)`);
    let cmd = find(spec.commands, first, 'command', undefined);
    let args = rest;
    while (isGroup(cmd)) {
      const members = await cmd.subcommands();
      const [next, ...more] = args;
      if (next === undefined || isHelp(next)) {
        (next === undefined ? ctx.stderr : ctx.stdout)(groupHelp(cmd, members));
        return next === undefined ? EXIT_USAGE : EXIT_OK;
      }
      cmd = find(members, `${cmd.name} ${next}`, cmd.member, cmd.name);
      args = more;
    }
    const dashdash = args.indexOf('--');
    if (args.slice(0, dashdash < 0 ? undefined : dashdash).some(isHelp)) {
      ctx.stdout(cmd.help ? cmd.help(args.filter((a) => !isHelp(a))) : commandHelp(cmd));
      return EXIT_OK;
    }
    const code = await cmd.run(parseArgs(cmd, args), ctx);
    return code ?? EXIT_OK;
  } catch (err) {
    return report(err, ctx);
  }
}

/** The command of a full name ('train ner') among some; a UsageError with a suggestion otherwise. */
function find(commands: readonly Command[], name: string, what: string, group: string | undefined): Command {
  const cmd = commands.find((c) => c.name === name);
  if (cmd) return cmd;
  const short = (n: string) => (group ? n.slice(group.length + 1) : n);
  const hint = suggest(short(name), commands.map((c) => short(c.name)));
  const list = group ? ` (${what}s: ${commands.map((c) => short(c.name)).join(', ')})` : '';
  throw new UsageError(`unknown ${what} '${short(name)}'${hint ? ` (did you mean '${hint}'?)` : ''}${list}`, group);
}

/** Prints an error: a usage mistake with a pointer to help, exit 2; a KexueError with its code, exit 1. */
function report(err: unknown, ctx: CommandContext): number {
  const code = (err as { code?: unknown })?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof UsageError) {
    ctx.stderr(`kexue: ${message}\nRun '${err.command ? `kexue ${err.command} --help` : 'kexue --help'}' for usage.\n`);
    return EXIT_USAGE;
  }
  if (typeof code === 'string' && code.startsWith('E_')) {
    ctx.stderr(`kexue: error [${code}]: ${message}\n`);
  } else {
    ctx.stderr(`kexue: unexpected error: ${err instanceof Error && err.stack ? err.stack : message}\n`);
  }
  return EXIT_FAILURE;
}
