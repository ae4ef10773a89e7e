/** The `kexue` program: process I/O around runCli. bin/kexue.js calls `main()`. */
import { commands } from './commands/index.js';
import type { CommandContext } from './framework/command.js';
import { runCli } from './framework/run.js';
import { version } from './version.js';

/** Standard input as text, decoded strictly as data files are (E_FORMAT `standard input:LINE: invalid UTF-8`). */
async function readStdin(): Promise<string> {
  const { readStreamLines } = await import('@kexue/models');
  return (await readStreamLines(process.stdin, 'standard input')).join('\n');
}

/** The context of the real process: stdout, stderr, stdin, environment and working directory. */
export function processContext(): CommandContext {
  return {
    stdout: (s) => void process.stdout.write(s),
    stderr: (s) => void process.stderr.write(s),
    readStdin,
    env: process.env,
    cwd: process.cwd(),
    ...(process.stderr.isTTY ? { terminal: { columns: process.stderr.columns ?? 80 } } : {}),
  };
}

/** Runs `kexue` with these arguments (default: the process's) and sets the exit code. */
export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<number> {
  // A reader that goes away (`kexue predict … | head`) is the end of the output, not a crash.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  }
  const code = await runCli({ commands, version }, argv, processContext());
  process.exitCode = code;
  return code;
}
