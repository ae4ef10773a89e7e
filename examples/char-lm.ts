/**
 * The demo: a one-block causal transformer (RoPE attention, GELU feed-forward, LayerNorm) that
 * learns to write CSL paper titles character by character, trained from scratch with Adam written
 * in a few lines of kexue ops. Every core op takes part: embedding, rope, attention, layerNorm,
 * matmul, gelu, dropout, crossEntropy, and the tape's gradients.
 *
 *   pnpm demo [steps=300] [threads=N]
 */
import { readFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import * as kx from '@kexue/core-cuda';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = Object.fromEntries(process.argv.slice(2).map((a) => a.split('=') as [string, string]));
const steps = Number(args.steps ?? 300);
if (args.threads) kx.setNumThreads(Number(args.threads));

// ---- data: characters of the titles, [BOS] title [EOS] padded to T ---------------------------
const T = 32, B = 16, D = 64, H = 4, F = 4 * D, PAD = 0, BOS = 1, EOS = 2;
const titles = readFileSync(path.join(root, 'data/demo/csl-titles.txt'), 'utf8').split('\n').filter(Boolean);
const chars = [...new Set(titles.join(''))].sort();
const vocab = new Map(chars.map((c, i) => [c, i + 3]));
const V = chars.length + 3;
const encoded = titles.map((t) => [BOS, ...[...t].map((c) => vocab.get(c)!), EOS].slice(0, T + 1));
const held = encoded.slice(0, 200), train = encoded.slice(200);

function batch(rows: number[][], offset: number): { ids: kx.Tensor; targets: kx.Tensor; mask: kx.Tensor } {
  const ids = new Int32Array(B * T), targets = new Int32Array(B * T).fill(-100), mask = new Uint8Array(B * T);
  for (let b = 0; b < B; b++) {
    const row = rows[(offset + b) % rows.length]!;
    for (let t = 0; t < T; t++) {
      ids[b * T + t] = row[t] ?? PAD;
      mask[b * T + t] = t < row.length ? 1 : 0;
      if (t + 1 < row.length) targets[b * T + t] = row[t + 1]!;
    }
  }
  return { ids: kx.tensor(ids, [B, T]), targets: kx.tensor(targets, [B * T]), mask: kx.tensor(mask, [B, 1, 1, T]) };
}

// ---- parameters -------------------------------------------------------------------------------
let seed = 1;
function init(shape: number[], std: number): kx.Tensor {
  const n = shape.reduce((a, b) => a * b, 1), data = new Float32Array(n);
  for (let i = 0; i < n; i += 2) { // Box-Muller over a small LCG: reproducible without Math.random
    const u = ((seed = (seed * 1103515245 + 12345) % 2147483648) + 1) / 2147483649;
    const v = ((seed = (seed * 1103515245 + 12345) % 2147483648) + 1) / 2147483649;
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    data[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) data[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return kx.keep(kx.tensor(data, shape));
}
const params: Record<string, kx.Tensor> = {
  embed: init([V, D], 0.02),
  wqkv: init([D, 3 * D], D ** -0.5), wo: init([D, D], D ** -0.5),
  ln1g: kx.keep(kx.ones([D])), ln1b: kx.keep(kx.zeros([D])),
  w1: init([D, F], D ** -0.5), w2: init([F, D], F ** -0.5),
  ln2g: kx.keep(kx.ones([D])), ln2b: kx.keep(kx.zeros([D])),
};

function forward(p: Record<string, kx.Tensor>, ids: kx.Tensor, mask: kx.Tensor, train: boolean, step: number): kx.Tensor {
  const x = kx.embedding(ids, p.embed!); // [B, T, D]
  const qkv = kx.reshape(kx.matmul(x, p.wqkv!), [B, T, 3, H, D / H]);
  const heads = kx.permute(qkv, [2, 0, 3, 1, 4]); // [3, B, H, T, D/H]
  const pick = (i: number) => kx.reshape(kx.slice(heads, [i, 0, 0, 0, 0], [1, B, H, T, D / H]), [B, H, T, D / H]);
  const q = kx.rope(pick(0)), k = kx.rope(pick(1));
  const att = kx.attention(q, k, pick(2), { mask, causal: true });
  const merged = kx.reshape(kx.permute(att, [0, 2, 1, 3]), [B, T, D]);
  let h = kx.layerNorm(kx.add(x, kx.matmul(merged, p.wo!)), p.ln1g!, p.ln1b!);
  let ff = kx.matmul(kx.gelu(kx.matmul(h, p.w1!)), p.w2!);
  if (train) ff = kx.dropout(ff, 0.1, { seed: step });
  h = kx.layerNorm(kx.add(h, ff), p.ln2g!, p.ln2b!);
  return kx.matmul(kx.reshape(h, [B * T, D]), p.embed!, { transB: true }); // tied output embedding
}

function heldOutLoss(): number {
  let total = 0, n = 0;
  for (let off = 0; off + B <= held.length; off += B) {
    total += kx.tidy(() => {
      const { ids, targets, mask } = batch(held, off);
      return kx.crossEntropy(forward(params, ids, mask, false, 0), targets, { ignoreIndex: -100 }).item();
    });
    n++;
  }
  return total / n;
}

// ---- Adam, in ops ----------------------------------------------------------------------------
const lr = 3e-3, beta1 = 0.9, beta2 = 0.98, epsilon = 1e-8;
const m: Record<string, kx.Tensor> = {}, v: Record<string, kx.Tensor> = {};
for (const [k, t] of Object.entries(params)) { m[k] = kx.keep(kx.zeros(t.shape)); v[k] = kx.keep(kx.zeros(t.shape)); }

console.log(`kexue demo: ${train.length} titles, vocab ${V}, ${Object.values(params).reduce((a, t) => a + t.size, 0)} parameters, ` +
  `${kx.buildInfo().threads} threads (${kx.buildInfo().simd}, ${kx.buildInfo().blas})`);
const first = heldOutLoss();
console.log(`step 0: held-out loss ${first.toFixed(3)} (uniform would be ${Math.log(V).toFixed(3)})`);
const started = Date.now();
for (let step = 1; step <= steps; step++) {
  const loss = kx.tidy(() => {
    const { ids, targets, mask } = batch(train, step * B);
    const { value, grads } = kx.valueAndGrad((p) => kx.crossEntropy(forward(p, ids, mask, true, step), targets, { ignoreIndex: -100 }), params);
    const c1 = 1 - beta1 ** step, c2 = 1 - beta2 ** step;
    for (const k of Object.keys(params)) {
      const g = grads[k]!;
      const mNew = kx.add(kx.mul(m[k]!, beta1), kx.mul(g, 1 - beta1));
      const vNew = kx.add(kx.mul(v[k]!, beta2), kx.mul(kx.mul(g, g), 1 - beta2));
      const update = kx.div(kx.mul(mNew, lr / c1), kx.add(kx.sqrt(kx.mul(vNew, 1 / c2)), epsilon));
      const pNew = kx.sub(params[k]!, update);
      kx.dispose([m[k]!, v[k]!, params[k]!]);
      m[k] = kx.keep(mNew); v[k] = kx.keep(vNew); params[k] = kx.keep(pNew);
    }
    return value.item();
  });
  if (step % 50 === 0 || step === steps) console.log(`step ${step}: train loss ${loss.toFixed(3)}  (${((Date.now() - started) / step).toFixed(0)} ms/step)`);
}
const last = heldOutLoss();
console.log(`held-out loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);

const outDir = path.join(root, 'runs', 'demo');
mkdirSync(outDir, { recursive: true });
await kx.io.saveSafetensors(path.join(outDir, 'model.safetensors'), params, { vocab: JSON.stringify(chars), steps: String(steps) });
console.log(`saved ${path.join('runs', 'demo', 'model.safetensors')}; live tensors ${kx.memory().tensors}`);
if (!(last < first - 0.5)) {
  console.error('the demo did not learn: held-out loss fell by less than 0.5 nats');
  process.exit(1);
}
