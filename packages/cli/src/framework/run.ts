/**
 * Dispatch: finds the command, handles --help/--version, parses the arguments, runs the command,
 * and turns errors into messages and exit codes (usage 2, KexueError 1 with its code).
 */
import { parseArgs } from './args.js';
import type { Command, CommandContext } from './command.js';
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError, suggest } from './errors.js';
import { commandHelp, globalHelp } from './help.js';

export interface CliSpec {
  commands: readonly Command[];
  version: string;
}

function isHelp(arg: string): boolean {
  return arg === '-h' || arg === '--help';
}

/** Runs one command line; returns the exit code. */
export async function runCli(spec: CliSpec, argv: readonly string[], ctx: CommandContext): Promise<number> {
  const names = spec.commands.map((c) => c.name);
  let cmd: Command | undefined;
  try {
    const [first, ...rest] = argv;
    if (first === undefined || isHelp(first) || first === 'help') {
      const topic = first === 'help' ? rest[0] : undefined;
      const target = topic === undefined ? undefined : spec.commands.find((c) => c.name === topic);
      if (topic !== undefined && !target) throw new UsageError(unknownCommand(topic, names));
      const text = target ? commandHelp(target) : globalHelp(spec.commands, spec.version);
      // No arguments at all is a usage mistake: the help goes to stderr, exit code 2.
      if (first === undefined) {
        ctx.stderr(text);
        return EXIT_USAGE;
      }
      ctx.stdout(text);
      return EXIT_OK;
    }
    if (first === '-V' || first === '--version') {
      ctx.stdout(`${spec.version}\n`);
      return EXIT_OK;
    }
    if (first.startsWith('-')) throw new UsageError(`unknown option '${first}' (options come after the command)`);
    cmd = spec.commands.find((c) => c.name === first);
    if (!cmd) throw new UsageError(unknownCommand(first, names));
    const dashdash = rest.indexOf('--');
    if (rest.slice(0, dashdash < 0 ? undefined : dashdash).some(isHelp)) {
      ctx.stdout(commandHelp(cmd));
      return EXIT_OK;
    }
    const args = parseArgs(cmd, rest);
    const code = await cmd.run(args, ctx);
    return code ?? EXIT_OK;
  } catch (err) {
    return report(err, ctx);
  }
}

function unknownCommand(name: string, names: string[]): string {
  const hint = suggest(name, names);
  return `unknown command '${name}'${hint ? ` (did you mean '${hint}'?)` : ''}`;
}

function report(err: unknown, ctx: CommandContext): number {
  if (err instanceof UsageError) {
    const help = err.command ? `kexue ${err.command} --help` : 'kexue --help';
    ctx.stderr(`kexue: ${err.message}\nRun '${help}' for usage.\n`);
    return EXIT_USAGE;
  }
  const code = (err as { code?: unknown })?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code === 'string' && code.startsWith('E_')) {
    ctx.stderr(`kexue: error [${code}]: ${message}\n`);
  } else {
    ctx.stderr(`kexue: unexpected error: ${err instanceof Error && err.stack ? err.stack : message}\n`);
  }
  return EXIT_FAILURE;
}
