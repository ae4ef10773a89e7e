/** The in-process CLI runner shared by the CLI tests: argv in, exit code and captured output out. */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { commands, runCli, version, type CommandContext } from '@kexue/cli';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** Runs `kexue ARGV` in this process from the repository root; `env` defaults to plain progress lines. */
export async function run(
  argv: string[],
  options: { stdin?: string; env?: Record<string, string> } = {},
): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const ctx: CommandContext = {
    stdout: (s) => void (out += s),
    stderr: (s) => void (err += s),
    readStdin: async () => options.stdin ?? '',
    env: options.env ?? { KEXUE_PROGRESS: 'lines' },
    cwd: repoRoot,
  };
  const code = await runCli({ commands, version }, argv, ctx);
  return { code, out, err };
}
