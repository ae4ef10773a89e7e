/**
 * kx.compile's rule (0) (FUSION.md): a residual add feeding LayerNorm or RMSNorm becomes the
 * residual norm kernel, and a bias add feeding GELU becomes bias_gelu, in inference graphs and in
 * traced train steps; and nothing is matched where moving the add would change what the program
 * computes or where the fused kernel rounds differently.
 */
import { describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { maxRelError } from './helpers.js';
import { Rng } from './parity_cases.js';
import { uniform } from './compile_helpers.js';

const ops = (plan: kx.CompiledPlan | undefined) => plan!.nodes.map((n) => n.op);

/** Compiles fn, runs it twice (trace, replay) and checks the replay against the eager result. */
function checkReplay<A extends kx.Tensor[]>(fn: (...args: A) => kx.Tensor, args: A, tolerance = 1e-6): kx.CompiledFunction<A, kx.Tensor> {
  const compiled = kx.compile(fn);
  kx.tidy(() => {
    const eager = fn(...args).toFloat32Array();
    compiled(...args);
    expect(maxRelError(compiled(...args), eager)).toBeLessThanOrEqual(tolerance);
  });
  expect(compiled.stats).toEqual({ traces: 1, replays: 1 });
  return compiled;
}

describe('kx.compile rule (0): hand-fused kernels', () => {
  const rng = new Rng(11);
  const x = uniform(rng, [6, 40]);
  const r = uniform(rng, [6, 40]);
  const gamma = uniform(rng, [40]);
  const beta = uniform(rng, [40]);
  const bias = uniform(rng, [40]);

  it('layerNorm(x + r) is add_layer_norm, rmsNorm(x + r) is add_rms_norm', () => {
    const ln = checkReplay((a: kx.Tensor, b: kx.Tensor) => kx.layerNorm(kx.add(a, b), gamma, beta, 1e-5), [x, r]);
    expect(ops(ln.plan(x, r))).toEqual(['add_layer_norm']);
    const rms = checkReplay((a: kx.Tensor, b: kx.Tensor) => kx.rmsNorm(kx.add(a, b), gamma, 1e-6), [x, r]);
    expect(ops(rms.plan(x, r))).toEqual(['add_rms_norm']);
    const bare = checkReplay((a: kx.Tensor, b: kx.Tensor) => kx.layerNorm(kx.add(a, b)), [x, r]);
    expect(ops(bare.plan(x, r))).toEqual(['add_layer_norm']);
  });

  it('a pre-norm block keeps the sum: it is the fused kernel\'s second output', () => {
    const block = checkReplay((a: kx.Tensor, b: kx.Tensor) => {
      const s = kx.add(a, b);
      return kx.add(kx.mul(kx.rmsNorm(s, gamma), 0.5), s);
    }, [x, r]);
    expect(ops(block.plan(x, r))).toEqual(['add_rms_norm', 'mul', 'add']);
  });

  it('gelu(x + bias) is bias_gelu, either operand order, both approximations', () => {
    const erf = checkReplay((a: kx.Tensor) => kx.gelu(kx.add(a, bias)), [x]);
    expect(ops(erf.plan(x))).toEqual(['bias_gelu']);
    const tanh = checkReplay((a: kx.Tensor) => kx.gelu(kx.add(bias, a), { approximate: 'tanh' }), [x]);
    expect(ops(tanh.plan(x))).toEqual(['bias_gelu']);
    expect(tanh.plan(x)!.nodes[0]!.attrs).toEqual({ approximate: 'tanh' });
  });

  it('matches in a traced train step, with the eager gradients', () => {
    const params = [x, r, gamma, beta, bias];
    const step = (...ts: kx.Tensor[]) => {
      const { value, grads } = kx.valueAndGrad(([a, b, g, be, bi]) => kx.add(kx.sum(kx.gelu(kx.layerNorm(kx.add(a!, b!), g, be))), kx.sum(kx.mul(bi!, bi!))), ts);
      return [value, ...grads];
    };
    const compiled = kx.compile(step);
    kx.tidy(() => {
      const eager = step(...params).map((t) => t.toFloat32Array());
      compiled(...params);
      compiled(...params).forEach((t, i) => expect(maxRelError(t, eager[i]!)).toBeLessThanOrEqual(1e-5));
    });
    expect(ops(compiled.plan(...params))).toContain('add_layer_norm');
    expect(ops(compiled.plan(...params))).not.toContain('layer_norm');
  });

  it('does not match where the add cannot move or the kernel would round differently', () => {
    // the sum is read before the norm: moving the add there would run its reader first
    const early = checkReplay((a: kx.Tensor, b: kx.Tensor) => {
      const s = kx.add(a, b);
      const t = kx.exp(s);
      return kx.add(kx.layerNorm(s), t);
    }, [x, r]);
    expect(ops(early.plan(x, r))).toContain('layer_norm');
    // a broadcast residual is not the residual norm's (it needs two tensors of one shape)
    const row = checkReplay((a: kx.Tensor) => kx.layerNorm(kx.add(a, bias)), [x]);
    expect(ops(row.plan(x))).toEqual(['add', 'layer_norm']);
    // the biased sum is also a result: it must exist, so bias_gelu (which never stores it) does not fit
    const both = kx.compile((a: kx.Tensor) => {
      const s = kx.add(a, bias);
      return [s, kx.gelu(s)];
    });
    kx.tidy(() => void both(x));
    expect(ops(both.plan(x))).toEqual(['add', 'unary']);
    // float16: bias_gelu would not round x + bias to float16 before the GELU
    const x16 = kx.cast(x, 'float16');
    const b16 = kx.cast(bias, 'float16');
    const half = kx.compile((a: kx.Tensor) => kx.gelu(kx.add(a, b16)));
    kx.tidy(() => void half(x16));
    expect(ops(half.plan(x16))).toEqual(['add', 'unary']);
    // fuse: false replays the traced ops as they are
    const plain = kx.compile((a: kx.Tensor, b: kx.Tensor) => kx.layerNorm(kx.add(a, b)), { fuse: false });
    kx.tidy(() => void plain(x, r));
    expect(ops(plain.plan(x, r))).toEqual(['add', 'layer_norm']);
    kx.dispose([x16, b16]);
  });
});
