/** Help text: the command list for `kexue --help`, usage and options for `kexue <command> --help`. */
import type { Command, CommandGroup, LeafCommand, OptionSpec } from './command.js';

function optionLabel(o: OptionSpec): string {
  const value = o.type === 'boolean' ? '' : ` ${o.valueName ?? (o.type === 'string' ? 'VALUE' : 'N')}`;
  return `${o.short ? `-${o.short}, ` : '    '}--${o.name}${value}`;
}

export function table(rows: [string, string][]): string {
  const width = Math.max(0, ...rows.map(([a]) => a.length));
  return rows.map(([a, b]) => `  ${a.padEnd(width)}  ${b}`).join('\n');
}

export function usageLine(cmd: LeafCommand): string {
  const opts = cmd.options
    .filter((o) => o.required)
    .map((o) => `--${o.name} ${o.valueName ?? 'VALUE'}`)
    .concat(cmd.options.some((o) => !o.required) ? ['[options]'] : []);
  const pos = cmd.positionals.map((p) => {
    const n = p.name.toUpperCase() + (p.variadic ? '...' : '');
    return p.required ? n : `[${n}]`;
  });
  return ['kexue', cmd.name, ...opts, ...pos].join(' ');
}

export function commandHelp(cmd: LeafCommand): string {
  const parts = [`Usage: ${usageLine(cmd)}`, '', cmd.summary];
  if (cmd.details) parts.push('', cmd.details.trimEnd());
  if (cmd.positionals.length) {
    parts.push('', 'Arguments:', table(cmd.positionals.map((p) => [p.name.toUpperCase(), p.description])));
  }
  const rows: [string, string][] = cmd.options.map((o) => {
    const extra = [o.choices ? o.choices.join('|') : '', o.required ? 'required' : '', o.default !== undefined ? `default: ${String(o.default)}` : '', o.repeatable ? 'repeatable' : '']
      .filter(Boolean)
      .join('; ');
    return [optionLabel(o), o.description + (extra ? ` (${extra})` : '')];
  });
  rows.push(['-h, --help', 'show this help']);
  parts.push('', 'Options:', table(rows));
  return parts.join('\n') + '\n';
}

/** `kexue <group> --help`: the members of a group (the tasks of `kexue train`). */
export function groupHelp(group: CommandGroup, members: readonly Command[]): string {
  const word = group.member.toUpperCase();
  const parts = [`Usage: kexue ${group.name} <${group.member}> ...`, '', group.summary, '', `${word[0]}${word.slice(1).toLowerCase()}s:`];
  parts.push(table(members.map((m) => [m.name.slice(group.name.length + 1), m.summary])));
  if (group.details) parts.push('', group.details.trimEnd());
  parts.push('', `Run 'kexue ${group.name} <${group.member}> --help' for its options.`);
  return parts.join('\n') + '\n';
}

export function globalHelp(commands: readonly Command[], version: string): string {
  return [
    `kexue ${version}: deep learning for Node.js over a C++/CUDA core.`,
    '',
    'Usage: kexue <command> [options] [arguments]',
    '',
    'Commands:',
    table(commands.map((c) => [c.name, c.summary])),
    '',
    'Options:',
    table([
      ['-h, --help', 'show this help (kexue <command> --help for a command)'],
      ['-V, --version', 'print the version'],
    ]),
    '',
    'Exit codes: 0 success, 1 failure while running, 2 bad command line.',
    '',
  ].join('\n');
}
