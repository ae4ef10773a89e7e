/** `kexue jl FILE`: a random projection of a file of vectors, its measured distortion against the Johnson–Lindenstrauss bound. */
import path from 'node:path';

import type { ProjectionKind } from '@kexue/models';

import type { Command } from '../framework/command.js';

// @kexue/models' PROJECTION_KINDS, repeated: its values load the native addon, which help must not need
const KINDS = ['gaussian', 'achlioptas', 'very-sparse', 'sign'] satisfies readonly ProjectionKind[];

export const jl: Command = {
  name: 'jl',
  summary: 'Project a file of vectors at random and measure the pairwise distortion against the JL bound.',
  details: [
    'Reads vectors [N, m] (.npy or .safetensors, as `kexue eval sts` and writeVectors write them), projects them',
    'to n dimensions with a seeded random matrix and prints, beside the bounds of ALGORITHMS.md §7 (24 ln N/ε²,',
    '16 ln N/ε², 8.33 ln N and the failure probability at n), what happened to the squared distances of all pairs:',
    'the largest and mean |ratio − 1| and the fraction within (1 ± ε). --dim auto projects to the smallest',
    'n > 24 ln N/ε². For --kind sign (LSH bits) it prints the angle estimate π·hamming/n against the true angles.',
    'Above --pairs pairs, the pairs of a seeded sample of the vectors are measured.',
    '',
    'Examples:',
    '  kexue jl vectors.npy --eps 0.5',
    '  kexue jl vectors.safetensors --dim 256 --kind achlioptas --seed 1 --out projected.npy',
    '  kexue jl vectors.npy --kind sign --dim 1024 --json',
  ].join('\n'),
  options: [
    { name: 'eps', type: 'number', valueName: 'E', description: 'ε in (0, 1): the distortion the bound allows', default: 0.5 },
    { name: 'dim', type: 'string', valueName: 'n|auto', description: 'the dimension projected to; auto: the smallest n > 24 ln N/ε²', default: 'auto', rule: { test: (v) => /^(auto|\d+)$/.test(v), expected: 'a positive integer or auto' } },
    { name: 'kind', type: 'string', valueName: 'KIND', description: 'the random matrix', default: 'gaussian', choices: KINDS },
    { name: 'seed', type: 'integer', valueName: 'S', description: 'the seed of the matrix (and of the sampled vectors)', default: 0 },
    { name: 'pairs', type: 'integer', valueName: 'N', description: 'measure at most N pairs', default: 5_000_000 },
    { name: 'out', type: 'string', valueName: 'FILE', description: 'also write the projected vectors (.npy or .safetensors)' },
    { name: 'json', type: 'boolean', description: 'print the report as JSON' },
    { name: 'device', type: 'string', valueName: 'cpu|cuda|cuda:N', description: 'where the products run', default: 'cpu' },
  ],
  positionals: [{ name: 'file', description: 'the vectors: a .npy or .safetensors matrix [N, m]', required: true }],
  async run(args, ctx) {
    const o = args.options as { eps: number; dim: string; kind: ProjectionKind; seed: number; pairs: number; out?: string; json?: boolean; device: string };
    const { formatJlReport, readVectors, runJl, writeVectors } = await import('@kexue/models');
    const file = args.positionals.file as string;
    const vectors = readVectors(path.resolve(ctx.cwd, file), { device: o.device });
    try {
      const { projected, report } = runJl(vectors, {
        eps: o.eps,
        dimension: o.dim === 'auto' ? 'auto' : Number(o.dim),
        kind: o.kind,
        seed: o.seed,
        maxPairs: o.pairs,
      });
      try {
        if (o.out !== undefined) await writeVectors(path.resolve(ctx.cwd, o.out), projected, { kind: report.kind, seed: String(report.seed) });
      } finally {
        projected.dispose();
      }
      ctx.stdout(o.json ? `${JSON.stringify({ file, ...report, ...(o.out !== undefined ? { out: o.out } : {}) })}\n` : formatJlReport(report, file));
    } finally {
      vectors.dispose();
    }
  },
};
