/** What the CLI tests compare to show that a failed command left a run directory untouched. */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

/** Every file below dir with its size, modification time and first 64 bytes. */
export function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = path.join(d, e);
      const s = statSync(p);
      if (s.isDirectory()) walk(p);
      else out[path.relative(dir, p)] = `${s.size}:${s.mtimeMs}:${readFileSync(p).subarray(0, 64).toString('hex')}`;
    }
  };
  walk(dir);
  return out;
}
