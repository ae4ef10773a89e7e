/**
 * Linear attention with RoPE in the numerator only (ALGORITHMS.md §6.1, Su's RoPE article):
 *
 *     o_i = Σ_j [R_i φ(q_i)]ᵀ[R_j φ(k_j)] v_j / Σ_j φ(q_i)ᵀ φ(k_j),   φ = elu + 1,
 *
 * over all j (non-causal) or j ≤ i (causal). The rotation is applied after φ, and the denominator
 * keeps the unrotated features so it stays positive. Non-causal, the sums factor as
 * R φ(Q) · ((R φ(K))ᵀ V), O(T·d·dv). Causal, the sequence is cut into chunks: inside a chunk the
 * masked C×C products, across chunks the running sums of k vᵀ (prefix sums as a product with a
 * strictly lower-triangular matrix), O(T·C·d + (T/C)²·d·dv). Built from differentiable core ops.
 */
import { ArgumentError, add, concat, div, exp, matmul, ones, relu, reshape, slice, sub, sum, tensor, transpose, where, zeros, type Tensor, type TensorOptions } from '@kexue/core-cuda';

import { applyRope, type LayerRopeOptions } from './rope.js';

export interface LinearAttentionOptions {
  /** Each query sees keys j ≤ i only. Default false. */
  causal?: boolean;
  /** A key padding mask, uint8 [B, 1, 1, Tk] (1 = real key); other mask shapes → E_ARG. */
  mask?: Tensor | null;
  /** RoPE on the numerator's φ(q) and φ(k) (kx.rope options, positions 0 … T−1 unless given); null: none. */
  rope?: (LayerRopeOptions & { positions?: Tensor | null }) | null;
  /** Chunk length of the causal form. Default 64. */
  chunk?: number;
}

/** elu(x) + 1 = relu(x) + exp(min(x, 0)), min(x, 0) = x − relu(x): positive, differentiable. */
export function eluPlusOne(x: Tensor): Tensor {
  const r = relu(x);
  return add(r, exp(sub(x, r)));
}

/** The [n, n] matrix of keep(i, j) as 1 and 0. */
function triangle(n: number, keep: (i: number, j: number) => boolean, options: TensorOptions): Tensor {
  return tensor(Float32Array.from({ length: n * n }, (_, k) => (keep(Math.floor(k / n), k % n) ? 1 : 0)), [n, n], options);
}

/** The causal form's chunking of T positions: C a chunk, n chunks, and the two masks they need. */
interface Chunking {
  C: number;
  n: number;
  /** uint8 [C, C]: j ≤ i within a chunk. */
  within: Tensor;
  /** [n, n] of 1 and 0 in the features' dtype: chunk j strictly before chunk i. */
  earlier: Tensor;
}

function chunking(T: number, chunk: number, dtype: Tensor['dtype'], device: string): Chunking {
  const C = Math.min(chunk, T);
  const n = Math.ceil(T / C);
  return { C, n, within: triangle(C, (i, j) => j <= i, { dtype: 'uint8', device }), earlier: triangle(n, (i, j) => j < i, { dtype, device }) };
}

/** Σ_{j ≤ i} (q_i · k_j) v_j for q, k [B, H, T, d] and v [B, H, T, e], chunk by chunk. */
function causalSums(q: Tensor, k: Tensor, v: Tensor, { C, n, within, earlier }: Chunking): Tensor {
  const [B, H, T, d] = q.shape as [number, number, number, number];
  const e = v.shape[3]!;
  // Zero rows past T add nothing to any sum.
  const pad = (x: Tensor) => (n * C === T ? x : concat([x, zeros([B, H, n * C - T, x.shape[3]!], { dtype: x.dtype, device: x.device })], 2));
  const qc = reshape(pad(q), [B, H, n, C, d]);
  const kc = reshape(pad(k), [B, H, n, C, d]);
  const vc = reshape(pad(v), [B, H, n, C, e]);
  const scores = where(within, matmul(qc, transpose(kc)), 0);
  const intra = matmul(scores, vc);
  // Σ over earlier chunks of kᵀv: the chunks' [d, e] sums, prefix-summed across chunks.
  const kv = reshape(matmul(transpose(kc), vc), [B, H, n, d * e]);
  const before = reshape(matmul(earlier, kv), [B, H, n, d, e]);
  const out = reshape(add(intra, matmul(qc, before)), [B, H, n * C, e]);
  return n * C === T ? out : slice(out, [0, 0, 0, 0], [B, H, T, e]);
}

/**
 * Linear attention of q, k [B, H, T(k), d] and v [B, H, Tk, dv] → [B, H, Tq, dv], RoPE in the
 * numerator only. Causal needs Tq = Tk. Differentiable in q, k and v.
 *
 * Errors: tensors not rank 4 or with mismatched sizes (E_ARG), a mask that is not a key padding
 * mask [B, 1, 1, Tk] (E_ARG), a bad chunk (E_ARG), as well as kx.rope's for the rope options.
 */
export function linearAttention(q: Tensor, k: Tensor, v: Tensor, options: LinearAttentionOptions = {}): Tensor {
  const { causal = false, mask = null, rope = null, chunk = 64 } = options;
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) throw new ArgumentError(`linearAttention: q, k, v must be [B, H, T, d], got ${q.describe()}, ${k.describe()}, ${v.describe()}`);
  const [B, H, Tq, d] = q.shape as [number, number, number, number];
  const Tk = k.shape[2]!;
  if (k.shape[0] !== B || k.shape[1] !== H || k.shape[3] !== d || v.shape[0] !== B || v.shape[1] !== H || v.shape[2] !== Tk) {
    throw new ArgumentError(`linearAttention: q ${q.describe()}, k ${k.describe()} and v ${v.describe()} do not match`);
  }
  if (causal && Tq !== Tk) throw new ArgumentError(`linearAttention: causal needs as many queries as keys, got ${Tq} and ${Tk}`);
  if (!Number.isInteger(chunk) || chunk < 1) throw new ArgumentError(`linearAttention: chunk must be a positive integer, got ${String(chunk)}`);
  const fq = eluPlusOne(q);
  let fk = eluPlusOne(k);
  if (mask !== null) {
    const [mb, mh, mq, mk] = mask.shape;
    if (mask.rank !== 4 || mask.dtype !== 'uint8' || (mb !== B && mb !== 1) || mh !== 1 || mq !== 1 || mk !== Tk) {
      throw new ArgumentError(`linearAttention: only a uint8 key padding mask [B, 1, 1, Tk] is supported, got ${mask.describe()}`);
    }
    // Padded keys get φ(k) = 0: they add to neither sum.
    fk = where(reshape(mask, [mb!, 1, Tk, 1]), fk, 0);
  }
  const { positions = null, ...ropeOptions } = rope ?? {};
  const rq = rope ? applyRope(fq, positions, ropeOptions) : fq;
  const rk = rope ? applyRope(fk, positions, ropeOptions) : fk;
  if (causal) {
    // The denominator is the same sum with v = 1.
    // (the numerator and the denominator cut the sequence alike)
    const chunks = chunking(Tk, chunk, fq.dtype, fq.device);
    const den = causalSums(fq, fk, ones([B, H, Tk, 1], { dtype: v.dtype, device: v.device }), chunks);
    return div(causalSums(rq, rk, v, chunks), den);
  }
  const num = matmul(rq, matmul(transpose(rk), v));
  const den = matmul(fq, transpose(sum(fk, 2, true)));
  return div(num, den);
}
