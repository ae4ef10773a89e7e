/**
 * Command-line parsing against a command's spec: `--name value`, `--name=value`, `-x value`,
 * `--flag`, `--no-flag`, `--` (everything after is positional). Every mistake is a UsageError.
 */
import { suggest } from '@kexue/models/suggest';

import { camel, type LeafCommand, type OptionSpec, type ParsedArgs } from './command.js';
import { UsageError } from './errors.js';

function convert(spec: OptionSpec, raw: string, command: string): string | number {
  if (spec.type === 'string') {
    if (spec.choices && !spec.choices.includes(raw)) throw new UsageError(`--${spec.name} must be one of ${spec.choices.join(', ')}, got '${raw}'`, command);
    if (spec.rule && !spec.rule.test(raw)) throw new UsageError(`--${spec.name}: expected ${spec.rule.expected}, got ${JSON.stringify(raw)}`, command);
    return raw;
  }
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${spec.name} expects a number, got '${raw}'`, command);
  if (spec.type === 'integer' && !Number.isInteger(n)) throw new UsageError(`--${spec.name} expects an integer, got '${raw}'`, command);
  return n;
}

/** Parses `argv` (the arguments after the command name) for `cmd`. */
export function parseArgs(cmd: LeafCommand, argv: readonly string[]): ParsedArgs {
  const byName = new Map(cmd.options.map((o) => [o.name, o]));
  const byShort = new Map(cmd.options.filter((o) => o.short).map((o) => [o.short!, o]));
  const options: ParsedArgs['options'] = {};
  const rest: string[] = [];
  const set = (spec: OptionSpec, value: string | number | boolean): void => {
    const key = camel(spec.name);
    if (spec.repeatable) {
      const list = (options[key] as Array<string | number> | undefined) ?? [];
      list.push(value as string | number);
      options[key] = list;
    } else {
      if (options[key] !== undefined) throw new UsageError(`--${spec.name} is given more than once`, cmd.name);
      options[key] = value;
    }
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      rest.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = arg.slice(2, eq < 0 ? undefined : eq);
      const inline = eq < 0 ? undefined : arg.slice(eq + 1);
      let spec = byName.get(name);
      if (!spec && name.startsWith('no-')) {
        const positive = byName.get(name.slice(3));
        if (positive && positive.type === 'boolean') {
          if (inline !== undefined) throw new UsageError(`--${name} takes no value`, cmd.name);
          set(positive, false);
          continue;
        }
      }
      if (!spec) {
        const hint = suggest(name, cmd.options.map((o) => o.name));
        throw new UsageError(`unknown option '--${name}' for '${cmd.name}'${hint ? ` (did you mean --${hint}?)` : ''}`, cmd.name);
      }
      if (spec.type === 'boolean') {
        if (inline !== undefined) throw new UsageError(`--${name} takes no value (use --no-${name} to turn it off)`, cmd.name);
        set(spec, true);
        continue;
      }
      const raw = inline ?? argv[++i];
      if (raw === undefined) throw new UsageError(`--${name} needs a value`, cmd.name);
      set(spec, convert(spec, raw, cmd.name));
      continue;
    }
    if (arg.startsWith('-') && arg.length > 1 && !/^-\d/.test(arg)) {
      if (arg.length !== 2) throw new UsageError(`unknown option '${arg}' for '${cmd.name}' (long options take two dashes)`, cmd.name);
      const spec = byShort.get(arg[1]!);
      if (!spec) throw new UsageError(`unknown option '${arg}' for '${cmd.name}'`, cmd.name);
      if (spec.type === 'boolean') {
        set(spec, true);
        continue;
      }
      const raw = argv[++i];
      if (raw === undefined) throw new UsageError(`${arg} needs a value`, cmd.name);
      set(spec, convert(spec, raw, cmd.name));
      continue;
    }
    rest.push(arg);
  }
  for (const spec of cmd.options) {
    const key = camel(spec.name);
    if (options[key] === undefined) {
      if (spec.required) throw new UsageError(`--${spec.name} is required`, cmd.name);
      if (spec.default !== undefined) options[key] = spec.default;
    }
  }
  const positionals: ParsedArgs['positionals'] = {};
  let k = 0;
  for (const p of cmd.positionals) {
    if (p.variadic) {
      positionals[p.name] = rest.slice(k);
      k = rest.length;
      if (p.required && (positionals[p.name] as string[]).length === 0) throw new UsageError(`missing ${p.name.toUpperCase()}`, cmd.name);
      continue;
    }
    if (k < rest.length) positionals[p.name] = rest[k++];
    else if (p.required) throw new UsageError(`missing ${p.name.toUpperCase()}`, cmd.name);
  }
  if (k < rest.length) throw new UsageError(`unexpected argument '${rest[k]}' for '${cmd.name}'`, cmd.name);
  return { options, positionals };
}
