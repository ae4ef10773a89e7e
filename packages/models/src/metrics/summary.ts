/**
 * The summarization metrics of T5 PEGASUS's CSL evaluation (ALGORITHMS.md §4.4), character level:
 * the title and the prediction are lower-cased and split into characters (whitespace dropped).
 *
 * - ROUGE-1, ROUGE-2, ROUGE-L F, as the Python `rouge` package computes them on those characters:
 *   n-grams as sets (each distinct n-gram counted once), P = overlap / the prediction's n-grams,
 *   R = overlap / the reference's, F = 2PR / (P + R + 1e-8); ROUGE-L with P and R from the
 *   longest common subsequence over the lengths.
 * - BLEU as NLTK's sentence_bleu with SmoothingFunction().method1: clipped n-gram precisions up to
 *   4 with equal weights, a zero precision replaced by 0.1 / its n-gram count, brevity penalty
 *   exp(1 − r/c) when the prediction is shorter; 0 when no character matches.
 *
 * An empty prediction scores 0 on all four (the reference code skips it, counting 0).
 */

/** The characters a text is scored on: lower-cased, whitespace dropped, one per code point. */
export function scoringChars(text: string): string[] {
  return [...text.toLowerCase()].filter((c) => !/\s/u.test(c));
}

function ngrams(chars: readonly string[], n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i + n <= chars.length; i++) out.push(chars.slice(i, i + n).join('\u0000'));
  return out;
}

const f1 = (p: number, r: number) => (2 * p * r) / (p + r + 1e-8);

function rougeN(pred: readonly string[], ref: readonly string[], n: number): number {
  const p = new Set(ngrams(pred, n));
  const r = new Set(ngrams(ref, n));
  if (p.size === 0 || r.size === 0) return 0;
  let overlap = 0;
  for (const g of p) if (r.has(g)) overlap++;
  return f1(overlap / p.size, overlap / r.size);
}

/** The length of the longest common subsequence of a and b. */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  let prev = new Uint32Array(b.length + 1);
  let cur = new Uint32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1]! + 1 : Math.max(prev[j]!, cur[j - 1]!);
    [prev, cur] = [cur, prev];
  }
  return prev[b.length]!;
}

function rougeL(pred: readonly string[], ref: readonly string[]): number {
  if (pred.length === 0 || ref.length === 0) return 0;
  const lcs = lcsLength(pred, ref);
  return f1(lcs / pred.length, lcs / ref.length);
}

function bleu(pred: readonly string[], ref: readonly string[]): number {
  if (pred.length === 0) return 0;
  let logSum = 0;
  for (let n = 1; n <= 4; n++) {
    const counts = new Map<string, number>();
    for (const g of ngrams(ref, n)) counts.set(g, (counts.get(g) ?? 0) + 1);
    const hyp = ngrams(pred, n);
    let matched = 0;
    const used = new Map<string, number>();
    for (const g of hyp) {
      const u = used.get(g) ?? 0;
      if (u < (counts.get(g) ?? 0)) {
        matched++;
        used.set(g, u + 1);
      }
    }
    if (n === 1 && matched === 0) return 0;
    const denominator = Math.max(1, hyp.length);
    logSum += 0.25 * Math.log(matched === 0 ? 0.1 / denominator : matched / denominator);
  }
  const c = pred.length;
  const r = ref.length;
  const brevity = c > r ? 1 : Math.exp(1 - r / c);
  return brevity * Math.exp(logSum);
}

/** The four scores of one prediction against its reference, each in [0, 1]. */
export interface SummaryScores {
  rouge1: number;
  rouge2: number;
  rougeL: number;
  bleu: number;
}

/** ROUGE-1/2/L F and BLEU of one prediction against its reference (character level). */
export function summaryScores(prediction: string, reference: string): SummaryScores {
  const p = scoringChars(prediction);
  const r = scoringChars(reference);
  if (p.length === 0) return { rouge1: 0, rouge2: 0, rougeL: 0, bleu: 0 };
  return { rouge1: rougeN(p, r, 1), rouge2: rougeN(p, r, 2), rougeL: rougeL(p, r), bleu: bleu(p, r) };
}

/** Averages of the four scores over a set of (prediction, reference) pairs, as it grows. */
export class SummaryMetrics {
  #sum: SummaryScores = { rouge1: 0, rouge2: 0, rougeL: 0, bleu: 0 };
  #count = 0;

  update(prediction: string, reference: string): SummaryScores {
    const s = summaryScores(prediction, reference);
    for (const k of Object.keys(s) as (keyof SummaryScores)[]) this.#sum[k] += s[k];
    this.#count++;
    return s;
  }

  /** The pairs scored so far. */
  get count(): number {
    return this.#count;
  }

  /** The means (0 for no pairs). */
  result(): SummaryScores {
    const n = Math.max(1, this.#count);
    return { rouge1: this.#sum.rouge1 / n, rouge2: this.#sum.rouge2 / n, rougeL: this.#sum.rougeL / n, bleu: this.#sum.bleu / n };
  }
}

/**
 * The lead baseline of a summarization set: each source's first characters, as many as the mean
 * reference length (rounded), so that a reader knows what a model's scores are worth.
 */
export function leadBaseline(pairs: ReadonlyArray<{ source: string; target: string }>): SummaryScores {
  const metrics = new SummaryMetrics();
  if (pairs.length === 0) return metrics.result();
  const mean = Math.round(pairs.reduce((n, p) => n + scoringChars(p.target).length, 0) / pairs.length);
  for (const p of pairs) metrics.update(scoringChars(p.source).slice(0, mean).join(''), p.target);
  return metrics.result();
}
