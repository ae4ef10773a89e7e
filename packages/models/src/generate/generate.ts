/**
 * Sequence generation for any model with an incremental decoding state (DecodingState: T5's KV
 * cache): beam search as bert4keras's AutoRegressiveDecoder.beam_search (ALGORITHMS.md §4.4; the
 * default), greedy decoding, and seeded sampling (temperature, top-k, top-p); batched; each
 * sequence stops at the end token. `generateStream` yields tokens as they are chosen.
 *
 * Scores are summed ln(p + 1e-12) in float32, as bert4keras sums them, so that the choices (and a
 * beam's ties) are those of the reference implementation.
 */
import { ArgumentError, PhiloxStream, ShapeError, div, softmax, tidy, topk, type Tensor } from '@kexue/core-cuda';

import type { DecodingState, Seq2SeqGenerator } from './decoder.js';

export interface GenerateOptions {
  /** 'beam' (default: bert4keras's beam search), 'greedy' or 'sample'. */
  mode?: 'beam' | 'greedy' | 'sample';
  /** Beams kept per row (beam mode: every row's beams decode together); default 1. */
  numBeams?: number;
  /** At most this many tokens after the start token (the end token included); default 32. */
  maxNewTokens?: number;
  /** The end token is not chosen before this many tokens; default 1. */
  minNewTokens?: number;
  /**
   * Beam mode: candidates are ranked by score / length^lengthPenalty (length = tokens generated);
   * default 0, bert4keras's plain summed log-probabilities.
   */
  lengthPenalty?: number;
  /** The token that ends a sequence; default the model's (T5: eos_token_id). */
  endTokenId?: number;
  /** Sampling: logits are divided by this; default 1. */
  temperature?: number;
  /** Sampling: only the k most likely tokens; default 0 (all). */
  topK?: number;
  /** Sampling: only the smallest set of most likely tokens whose probabilities sum to at least p; default 1 (all). */
  topP?: number;
  /** Sampling: the seed of the token draws (a Philox stream of its own: the same seed gives the same sequences); default 0. */
  seed?: number;
}

/** A generated sequence: its tokens after the start token (the end token included when it was chosen). */
export interface Generated {
  tokens: number[];
  /** Its summed ln(p + 1e-12) (before any length penalty). */
  score: number;
  /** Whether it ended with the end token (else it reached maxNewTokens). */
  finished: boolean;
}

interface Settings extends Required<Omit<GenerateOptions, 'endTokenId'>> {
  endTokenId: number;
}

/** Philox counter word c3 reserved for sampling ('SAMP'), apart from dropout's and the data shuffles' streams. */
const SAMPLE_STREAM = 0x53414d50;

function settings(model: Seq2SeqGenerator, o: GenerateOptions): Settings {
  const s: Settings = {
    mode: o.mode ?? 'beam',
    numBeams: o.numBeams ?? 1,
    maxNewTokens: o.maxNewTokens ?? 32,
    minNewTokens: o.minNewTokens ?? 1,
    lengthPenalty: o.lengthPenalty ?? 0,
    endTokenId: o.endTokenId ?? model.defaultEndTokenId,
    temperature: o.temperature ?? 1,
    topK: o.topK ?? 0,
    topP: o.topP ?? 1,
    seed: o.seed ?? 0,
  };
  if (s.mode !== 'beam' && s.mode !== 'greedy' && s.mode !== 'sample') throw new ArgumentError(`generate: mode must be 'beam', 'greedy' or 'sample', got ${String(s.mode)}`);
  const int = (v: number, min: number, what: string) => {
    if (!Number.isInteger(v) || v < min) throw new ArgumentError(`generate: ${what} must be an integer ≥ ${min}, got ${String(v)}`);
  };
  int(s.numBeams, 1, 'numBeams');
  int(s.maxNewTokens, 1, 'maxNewTokens');
  int(s.minNewTokens, 0, 'minNewTokens');
  int(s.endTokenId, 0, 'endTokenId');
  int(s.topK, 0, 'topK');
  int(s.seed, 0, 'seed');
  if (s.minNewTokens > s.maxNewTokens) throw new ArgumentError(`generate: minNewTokens ${s.minNewTokens} exceeds maxNewTokens ${s.maxNewTokens}`);
  if (!(s.temperature > 0) || !Number.isFinite(s.temperature)) throw new ArgumentError(`generate: temperature must be a positive number, got ${String(s.temperature)}`);
  if (!(s.topP > 0 && s.topP <= 1)) throw new ArgumentError(`generate: topP must be in (0, 1], got ${String(s.topP)}`);
  if (!Number.isFinite(s.lengthPenalty)) throw new ArgumentError(`generate: lengthPenalty must be a finite number, got ${String(s.lengthPenalty)}`);
  return s;
}

function checkInputs(inputIds: Tensor, attentionMask: Tensor | null): void {
  if (inputIds.rank !== 2 || inputIds.dtype !== 'int32') throw new ShapeError(`generate: inputIds must be int32 [B, S], got ${inputIds.describe()}`);
  if (attentionMask && (attentionMask.rank !== 2 || attentionMask.shape[0] !== inputIds.shape[0] || attentionMask.shape[1] !== inputIds.shape[1])) {
    throw new ShapeError(`generate: attentionMask must be [${inputIds.shape.join(', ')}], got ${attentionMask.describe()}`);
  }
}

/** softmax(logits / temperature) per row, left on the device; frees logits. */
function probabilities(logits: Tensor, temperature = 1): Tensor {
  const p = tidy(() => softmax(temperature === 1 ? logits : div(logits, temperature)));
  logits.dispose();
  return p;
}

/** ln(p + 1e-12) in float32, as bert4keras scores a token (taken only for the tokens a search keeps). */
function lnp(p: number): number {
  const f = Math.fround;
  return f(Math.log(f(p + 1e-12)));
}

/** A row's candidate tokens with their probabilities. */
interface Candidates {
  tokens: number[];
  probs: number[];
}

/**
 * Each row's k most likely tokens (p: probabilities [rows, V]), most likely first, ties to the
 * lower id; `barred` (the end token before minNewTokens, else −1) is left out. A device top-k: only
 * [rows, k + 1] values reach the host, not the vocabulary. Frees p.
 */
function topTokens(p: Tensor, k: number, barred: number): Candidates[] {
  const [rows, V] = p.shape as [number, number];
  const take = Math.min(V, k + (barred >= 0 ? 1 : 0));
  const [values, indices] = tidy(() => {
    const top = topk(p, take);
    return [top.values.toFloat32Array(), top.indices.dataSync() as Int32Array] as const;
  });
  p.dispose();
  return Array.from({ length: rows }, (_, r) => {
    const row: Candidates = { tokens: [], probs: [] };
    for (let i = r * take; i < (r + 1) * take && row.tokens.length < k; i++) {
      if (indices[i] === barred) continue;
      row.tokens.push(indices[i]!);
      row.probs.push(values[i]!);
    }
    return row;
  });
}

/** Every token of each row but `barred` (p: probabilities [rows, V], copied to the host), most likely first when `ranked`. Frees p. */
function allTokens(p: Tensor, barred: number, ranked: boolean): Candidates[] {
  const [rows, V] = p.shape as [number, number];
  const host = p.toFloat32Array();
  p.dispose();
  return Array.from({ length: rows }, (_, r) => {
    const row = host.subarray(r * V, (r + 1) * V);
    const tokens = Array.from(row.keys()).filter((j) => j !== barred);
    if (ranked) tokens.sort((a, b) => row[b]! - row[a]! || a - b);
    return { tokens, probs: tokens.map((j) => row[j]!) };
  });
}

/**
 * A sampled token of one row's candidates (temperature already applied; topK already kept the k
 * most likely, ranked): topP keeps the fewest most likely whose probabilities reach p of the total;
 * then a draw in proportion. Returns the index into the candidates.
 */
function draw(c: Candidates, topP: number, rng: PhiloxStream): number {
  let n = c.tokens.length;
  if (topP < 1) {
    const total = c.probs.reduce((t, q) => t + q, 0);
    let sum = 0;
    let kept = 0;
    while (kept < n && sum < topP * total) sum += c.probs[kept++]!;
    n = Math.max(1, kept);
  }
  let mass = 0;
  for (let i = 0; i < n; i++) mass += c.probs[i]!;
  let u = (rng.nextUint32() / 2 ** 32) * mass;
  for (let i = 0; i < n; i++) {
    u -= c.probs[i]!;
    if (u < 0) return i;
  }
  return n - 1;
}

/** Each row's chosen token and its probability: the most likely, or a draw. */
function choose(p: Tensor, s: Settings, rng: PhiloxStream | null, barred: number): Array<{ token: number; prob: number }> {
  const candidates = !rng ? topTokens(p, 1, barred) : s.topK > 0 ? topTokens(p, s.topK, barred) : allTokens(p, barred, s.topP < 1);
  return candidates.map((c) => {
    const i = rng ? draw(c, s.topP, rng) : 0;
    return { token: c.tokens[i]!, prob: c.probs[i]! };
  });
}

/**
 * Greedy or sampled decoding of every row at once: yields each step's chosen tokens (row → token)
 * and returns the sequences. Finished rows leave the state.
 */
function* decodeRows(state: DecodingState, s: Settings): Generator<Array<[number, number]>, Generated[]> {
  const rows = state.rows;
  const out: Generated[] = Array.from({ length: rows }, () => ({ tokens: [], score: 0, finished: false }));
  const rng = s.mode === 'sample' ? new PhiloxStream(s.seed, 0, SAMPLE_STREAM) : null;
  let live = Array.from({ length: rows }, (_, r) => r);
  let last = live.map(() => state.startTokenId);
  for (let step = 0; step < s.maxNewTokens && live.length > 0; step++) {
    const p = probabilities(state.step(last), rng ? s.temperature : 1);
    const picks = choose(p, s, rng, step < s.minNewTokens ? s.endTokenId : -1);
    const chosen: Array<[number, number]> = [];
    live.forEach((r, i) => {
      const { token, prob } = picks[i]!;
      out[r]!.tokens.push(token);
      out[r]!.score = Math.fround(out[r]!.score + lnp(prob));
      chosen.push([r, token]);
    });
    yield chosen;
    const keep: number[] = [];
    live.forEach((r, i) => {
      if (out[r]!.tokens[out[r]!.tokens.length - 1] === s.endTokenId) out[r]!.finished = true;
      else keep.push(i);
    });
    if (keep.length < live.length && keep.length > 0) state.select(keep);
    live = keep.map((i) => live[i]!);
    last = live.map((r) => out[r]!.tokens[out[r]!.tokens.length - 1]!);
  }
  return out;
}

/** One input row's beam search: its live beams (tokens after the start), their scores, its beam count. */
interface RowSearch {
  beams: number[][];
  scores: number[];
  k: number;
  result: Generated | null;
}

/**
 * bert4keras's beam search (ALGORITHMS.md §4.4) for every row of the state at once: the state's
 * rows are the live rows' beams, in row order; each step a row keeps the global top k of its beams
 * × the vocabulary (from each beam's own top k), a row whose best candidate ends is done, and
 * other ended candidates are dropped (its k shrinks). A done row's beams leave the state.
 */
function beamSearch(state: DecodingState, s: Settings): Generated[] {
  const rows: RowSearch[] = Array.from({ length: state.rows }, () => ({ beams: [[]], scores: [0], k: s.numBeams, result: null }));
  const rank = (score: number, length: number) => (s.lengthPenalty === 0 ? score : score / Math.max(1, length) ** s.lengthPenalty);
  for (let step = 0; step < s.maxNewTokens; step++) {
    const live = rows.filter((r) => !r.result);
    if (live.length === 0) break;
    const p = probabilities(state.step(live.flatMap((r) => r.beams.map((b) => (b.length ? b[b.length - 1]! : state.startTokenId)))));
    const V = p.shape[1]!;
    const tops = topTokens(p, Math.max(...live.map((r) => r.k)), step < s.minNewTokens ? s.endTokenId : -1);
    const keep: number[] = []; // the state rows of the next step, in order
    let first = 0; // the row's first beam in the state
    for (const r of live) {
      const width = r.beams.length; // this row's state rows this step
      const cand: Array<{ index: number; score: number }> = [];
      r.beams.forEach((_, b) => {
        const top = tops[first + b]!;
        for (let i = 0; i < Math.min(r.k, top.tokens.length); i++) cand.push({ index: b * V + top.tokens[i]!, score: Math.fround(r.scores[b]! + lnp(top.probs[i]!)) });
      });
      cand.sort((x, y) => rank(y.score, step + 1) - rank(x.score, step + 1) || x.index - y.index);
      const top = cand.slice(0, r.k);
      const parents = top.map((c) => Math.floor(c.index / V));
      r.beams = top.map((c, i) => [...r.beams[parents[i]!]!, c.index % V]);
      r.scores = top.map((c) => c.score);
      let open = top.map((_, i) => i);
      if (step + 1 >= s.minNewTokens) {
        // the best candidate first: a finished best is the answer; otherwise finished ones are dropped
        if (r.beams[0]![step] === s.endTokenId) {
          r.result = { tokens: r.beams[0]!, score: r.scores[0]!, finished: true };
          open = [];
        } else {
          open = open.filter((i) => r.beams[i]![step] !== s.endTokenId);
          r.beams = open.map((i) => r.beams[i]!);
          r.scores = open.map((i) => r.scores[i]!);
          r.k = open.length;
        }
      }
      for (const i of open) keep.push(first + parents[i]!);
      first += width;
    }
    if (keep.length > 0) state.select(keep);
  }
  return rows.map((r) => r.result ?? { tokens: r.beams[0]!, score: r.scores[0]!, finished: false });
}

/**
 * Generates a sequence for each row of inputIds (int32 [B, S], with its padding mask): beam search
 * (default, numBeams 1), greedy or sampling, until the end token or maxNewTokens. Every decoding
 * state is freed before it returns, whatever happens.
 */
export function generate(model: Seq2SeqGenerator, inputIds: Tensor, options: GenerateOptions & { attentionMask?: Tensor | null } = {}): Generated[] {
  const s = settings(model, options);
  const mask = options.attentionMask ?? null;
  checkInputs(inputIds, mask);
  const state = model.startDecoding(inputIds, mask);
  try {
    if (s.mode === 'beam') return beamSearch(state, s);
    const steps = decodeRows(state, s);
    for (;;) {
      const next = steps.next();
      if (next.done) return next.value;
    }
  } finally {
    state.dispose();
  }
}

/**
 * Greedy or sampled generation that yields each token as it is chosen ({ row, token }), giving the
 * event loop a turn between steps. Breaking out of the loop frees the decoding state.
 */
export async function* generateStream(
  model: Seq2SeqGenerator,
  inputIds: Tensor,
  options: GenerateOptions & { attentionMask?: Tensor | null } = {},
): AsyncGenerator<{ row: number; token: number }, Generated[]> {
  const s = settings(model, { mode: 'greedy', ...options });
  if (s.mode === 'beam') throw new ArgumentError("generateStream: beams change until the end; stream 'greedy' or 'sample', or call generate for beam search");
  const mask = options.attentionMask ?? null;
  checkInputs(inputIds, mask);
  const state = model.startDecoding(inputIds, mask);
  try {
    const steps = decodeRows(state, s);
    for (;;) {
      const next = steps.next();
      if (next.done) return next.value;
      for (const [row, token] of next.value) yield { row, token };
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    state.dispose();
  }
}
