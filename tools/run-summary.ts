/**
 * One Markdown table row per run directory of `kexue train`: the recipe (head, optimizer, rate,
 * schedule), the dev metric at each evaluation, the best and the final one, the median tokens/s
 * and the training time, read from RUN/config.json and RUN/metrics.jsonl.
 *
 *   pnpm tsx tools/run-summary.ts RUN_DIR...
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { median } from '../bench/src/stats.js';

interface Record_ {
  kind: 'train' | 'eval';
  step: number;
  [key: string]: number | string;
}

const f3 = (x: number) => x.toFixed(3).replace(/^0\./, '.');

function row(dir: string): string {
  const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
  const records = readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record_);
  const train = records.filter((r) => r.kind === 'train');
  const evals = records.filter((r) => r.kind === 'eval');
  const ner = config.task === 'ner';
  const metric = ner ? 'f1' : 'loss';
  const values = evals.map((e) => e[metric] as number);
  const best = ner ? Math.max(...values) : Math.min(...values);
  const bestAt = evals[values.indexOf(best)]?.step;
  const last = evals.at(-1);
  const final = !last ? '—' : ner ? `${f3(last.precision as number)} / ${f3(last.recall as number)} / ${f3(last.f1 as number)}` : `loss ${(last.loss as number).toFixed(3)}, acc ${f3(last.accuracy as number)}`;
  const o = config.optim;
  const recipe = [ner ? config.head.kind : 'mlm', o.name, o.lr || 'default', `${o.schedule}${o.warmup ? `+${o.warmup} warm-up` : ''}`, config.init ? `init ${path.basename(config.init)}` : 'scratch'];
  const minutes = ((train.at(-1)?.elapsed_s as number) ?? NaN) / 60;
  return `| ${path.basename(dir)} | ${recipe.join(' · ')} | ${train.at(-1)?.step ?? 0} | ${values.map(ner ? f3 : (v) => v.toFixed(2)).join(' ')} | ${ner ? f3(best) : best.toFixed(3)} @ ${bestAt} | ${final} | ${(median(train.map((r) => r.tokens_per_s as number)) / 1000).toFixed(1)}k | ${minutes.toFixed(0)} min × ${config.train.threads || 'all'} threads |`;
}

const dirs = process.argv.slice(2);
if (dirs.length === 0) {
  console.error('usage: run-summary.ts RUN_DIR...');
  process.exit(2);
}
console.log('| run | recipe | updates | dev metric at each evaluation | best | final (P / R / F1) | tokens/s (median) | training time |');
console.log('|---|---|---:|---|---|---|---:|---|');
for (const d of dirs) console.log(row(d));
