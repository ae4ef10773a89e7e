/**
 * Generation over T5's KV cache: cached decoding equals a full recompute of the decoder at every
 * step (with rows reordered and dropped between steps, as beams and finished rows do); greedy and
 * beam search (bert4keras's algorithm) equal a PyTorch reference token for token
 * (tools/golden/fx_t5.py, fixtures/t5_generate.json); sampling is reproducible by seed; streaming
 * yields greedy's tokens; every cached tensor is freed.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as kx from '@kexue/core-cuda';
import { T5ForConditionalGeneration, generate, generateStream, t5ConfigFromHF } from '@kexue/models';
import { afterAll, describe, expect, it } from 'vitest';

import { expectCode } from '../../core-cuda/test/helpers.js';
import { loadModelFixture, relError } from './nn_helpers.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const fx = loadModelFixture('t5_pegasus');
const model = new T5ForConditionalGeneration(t5ConfigFromHF(fx.meta.config)).eval();
model.loadStateDict(fx.weights);
afterAll(() => {
  model.dispose();
  fx.dispose();
});
const { ids, mask } = fx.inputs;
const ints = (values: number[], shape: number[]) => kx.tensor(Int32Array.from(values), shape, { dtype: 'int32' });

describe('T5 KV-cached decoding', () => {
  it('equals a full recompute at every step, with rows reordered and dropped between steps', () => {
    const state = model.startDecoding(ids!, mask!);
    const B = ids!.shape[0]!;
    // the decoder inputs so far per original row, and which original row each state row holds
    const seqs: number[][] = Array.from({ length: B }, () => [0]);
    let rows = Array.from({ length: B }, (_, r) => r);
    const next = [[5, 9], [17, 3], [40, 41], [7, 7], [11, 60]];
    try {
      for (let step = 0; step < next.length; step++) {
        const cached = state.step(rows.map((r) => seqs[r]![seqs[r]!.length - 1]!));
        kx.tidy(() => {
          const S = ids!.shape[1]!;
          const encIds = kx.reshape(kx.concat(rows.map((r) => kx.slice(ids!, [r, 0], [1, -1]))), [rows.length, S]);
          const encMask = kx.reshape(kx.concat(rows.map((r) => kx.slice(mask!, [r, 0], [1, -1]))), [rows.length, S]);
          const T = seqs[0]!.length;
          const dec = ints(rows.flatMap((r) => seqs[r]!), [rows.length, T]);
          const full = model.forward({ inputIds: encIds, attentionMask: encMask, decoderInputIds: dec }).logits;
          const lastStep = kx.reshape(kx.slice(full, [0, T - 1, 0], [rows.length, 1, -1]), [rows.length, -1]);
          expect(relError(cached, lastStep), `step ${step}`).toBeLessThanOrEqual(1e-5);
        });
        cached.dispose();
        rows.forEach((r, i) => seqs[r]!.push(next[step]![i % 2]!));
        if (step === 1) {
          state.select([1, 0]); // a reorder
          rows = [rows[1]!, rows[0]!];
        }
        if (step === 3) {
          state.select([1, 1]); // a repeat (two beams of one parent): the original row 0 twice
          seqs[2] = [...seqs[rows[1]!]!];
          rows = [rows[1]!, rows[1]!];
        }
      }
    } finally {
      state.dispose();
    }
  });

  it('frees every cached tensor, also when generation stops early or a stream is broken off', async () => {
    // (a first run packs the eval-mode Linears' weights, which stay with the model)
    generate(model, ids!, { attentionMask: mask!, mode: 'greedy', maxNewTokens: 2 });
    const before = kx.memory().tensors;
    generate(model, ids!, { attentionMask: mask!, mode: 'beam', numBeams: 3, maxNewTokens: 6 });
    generate(model, ids!, { attentionMask: mask!, mode: 'greedy', maxNewTokens: 6 });
    for await (const _ of generateStream(model, ids!, { attentionMask: mask!, maxNewTokens: 6 })) break;
    expect(kx.memory().tensors).toBe(before);
  });
});

describe('generate', () => {
  const goldenFile = path.join(here, 'fixtures', 't5_generate.json');
  const golden = existsSync(goldenFile) ? (JSON.parse(readFileSync(goldenFile, 'utf8')) as Golden) : null;
  interface Golden {
    end_id: number;
    max_new_tokens: number;
    cases: Array<{ row: number; mode: 'greedy' | 'beam'; beams: number; min_new_tokens: number; input_ids: number[]; output: number[]; score?: number }>;
    batched_greedy: { input_ids: number[][]; mask: number[][]; outputs: number[][] };
  }

  it('greedy and beam search (2 and 3 beams, with and without a minimum length) equal the PyTorch reference token for token', () => {
    expect(golden, 'fixtures/t5_generate.json (tools/golden/fx_t5.py)').not.toBeNull();
    for (const c of golden!.cases) {
      const [out] = kx.tidy(() =>
        generate(model, ints(c.input_ids, [1, c.input_ids.length]), {
          mode: c.mode,
          numBeams: c.beams,
          minNewTokens: c.min_new_tokens,
          maxNewTokens: golden!.max_new_tokens,
          endTokenId: golden!.end_id,
        }),
      );
      const label = `row ${c.row} ${c.mode} ${c.beams} min ${c.min_new_tokens}`;
      expect(out!.tokens, label).toEqual(c.output);
      expect(out!.finished, label).toBe(c.output[c.output.length - 1] === golden!.end_id);
      if (c.score !== undefined) expect(Math.abs(out!.score - c.score), label).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(c.score)));
    }
  });

  it('batched greedy decoding of padded rows equals each row decoded alone', () => {
    const g = golden!.batched_greedy;
    const S = g.input_ids[0]!.length;
    const outs = kx.tidy(() =>
      generate(model, ints(g.input_ids.flat(), [g.input_ids.length, S]), {
        attentionMask: kx.tensor(Uint8Array.from(g.mask.flat()), [g.mask.length, S], { dtype: 'uint8' }),
        mode: 'greedy',
        minNewTokens: 0,
        maxNewTokens: golden!.max_new_tokens,
        endTokenId: golden!.end_id,
      }),
    );
    expect(outs.map((o) => o.tokens)).toEqual(g.outputs);
  });

  it('beam search over padded rows together equals each row searched alone', () => {
    const g = golden!.batched_greedy;
    const S = g.input_ids[0]!.length;
    for (const [beams, minNewTokens] of [[2, 0], [3, 0], [3, 3]] as const) {
      const options = { mode: 'beam' as const, numBeams: beams, minNewTokens, maxNewTokens: golden!.max_new_tokens, endTokenId: golden!.end_id };
      const together = kx.tidy(() =>
        generate(model, ints(g.input_ids.flat(), [g.input_ids.length, S]), { ...options, attentionMask: kx.tensor(Uint8Array.from(g.mask.flat()), [g.mask.length, S], { dtype: 'uint8' }) }),
      );
      const alone = golden!.cases.filter((c) => c.mode === 'beam' && c.beams === beams && c.min_new_tokens === minNewTokens).sort((a, b) => a.row - b.row);
      expect(together.map((t) => t.tokens), `${beams} beams, min ${minNewTokens}`).toEqual(alone.map((c) => c.output));
    }
  });

  it('sampling: one seed gives one sequence; top-k 1 is greedy; the end token is held back until minNewTokens', () => {
    const run = (o: Parameters<typeof generate>[2]) => generate(model, ids!, { attentionMask: mask!, maxNewTokens: 8, ...o }).map((g) => g.tokens);
    const a = run({ mode: 'sample', seed: 3, temperature: 1.5, topP: 0.9 });
    expect(run({ mode: 'sample', seed: 3, temperature: 1.5, topP: 0.9 })).toEqual(a);
    const seeds = [4, 5, 6, 7].map((seed) => JSON.stringify(run({ mode: 'sample', seed, temperature: 1.5 })));
    expect(seeds.some((s) => s !== JSON.stringify(a))).toBe(true);
    expect(run({ mode: 'sample', seed: 9, topK: 1 })).toEqual(run({ mode: 'greedy', minNewTokens: 1 }));
    for (const tokens of run({ mode: 'sample', seed: 1, temperature: 3, minNewTokens: 8, endTokenId: 2 })) expect(tokens.slice(0, 7)).not.toContain(2);
  });

  it('streaming yields greedy decoding token by token', async () => {
    const want = generate(model, ids!, { attentionMask: mask!, mode: 'greedy', maxNewTokens: 6 }).map((g) => g.tokens);
    const got: number[][] = want.map(() => []);
    for await (const { row, token } of generateStream(model, ids!, { attentionMask: mask!, maxNewTokens: 6 })) got[row]!.push(token);
    expect(got).toEqual(want);
  });

  it('bad options and inputs are E_ARG / E_SHAPE', async () => {
    expectCode(() => generate(model, ids!, { numBeams: 0 }), 'E_ARG');
    expectCode(() => generate(model, ids!, { mode: 'top' as never }), 'E_ARG');
    expectCode(() => generate(model, ids!, { minNewTokens: 9, maxNewTokens: 8 }), 'E_ARG');
    expectCode(() => generate(model, ids!, { mode: 'sample', topP: 0 }), 'E_ARG');
    expectCode(() => generate(model, ids!, { mode: 'sample', temperature: 0 }), 'E_ARG');
    expectCode(() => generate(model, kx.zeros([2, 3])), 'E_SHAPE');
    await expect(generateStream(model, ids!, { mode: 'beam' }).next()).rejects.toMatchObject({ code: 'E_ARG' });
  });
});
