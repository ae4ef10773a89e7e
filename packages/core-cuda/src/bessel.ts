/**
 * Modified Bessel functions of the first kind for the von Mises–Fisher distribution (ALGORITHMS.md
 * §5.1, §5.3), in float64 on the host: ln of the exponentially scaled I_v(x) (ive = I_v(x)·e^{-x})
 * and the ratio I_v(x) / I_{v-1}(x), stable for x into the tens of thousands and v into the
 * hundreds, where I_v itself overflows a double.
 *
 * Sources (the formulas, not code): the power series DLMF 10.25.2, summed in log space; the
 * uniform asymptotic (Debye) expansion DLMF 10.41.3 with the polynomials u_1 … u_4 of DLMF
 * 10.41.10 (Abramowitz & Stegun 9.3.9), written in p = sqrt(v² + x²) so that it holds down to
 * v = 0; Gauss's continued fraction for I_v / I_{v-1} (DLMF 10.33.1, the recurrence 10.29.1),
 * evaluated by the modified Lentz method (Numerical Recipes §5.2); ln Γ by Stirling's series
 * (DLMF 5.11.1) after shifting the argument above 10.
 */
import { ArgumentError } from './errors.js';

const LN_SQRT_2PI = 0.9189385332046728;

/** ln Γ(x) for x > 0, to about 1e-15 relative: Stirling's series at x + n ≥ 10, minus ln of the shift's product. */
export function logGamma(x: number): number {
  if (!(x > 0) || !Number.isFinite(x)) throw new ArgumentError(`logGamma: x must be finite and > 0, got ${x}`);
  let shift = 0;
  while (x < 10) {
    shift += Math.log(x);
    x += 1;
  }
  const r = 1 / x;
  const r2 = r * r;
  const series = r * (1 / 12 - r2 * (1 / 360 - r2 * (1 / 1260 - r2 * (1 / 1680 - r2 / 1188))));
  return (x - 0.5) * Math.log(x) - x + LN_SQRT_2PI + series - shift;
}

function checkOrderArgument(what: string, v: number, x: number): void {
  if (!(v >= 0) || !Number.isFinite(v)) throw new ArgumentError(`${what}: the order v must be finite and >= 0, got ${v}`);
  if (!(x >= 0) || !Number.isFinite(x)) throw new ArgumentError(`${what}: x must be finite and >= 0, got ${x}`);
}

/** Above this p = sqrt(v² + x²) the Debye expansion is used: its first omitted term is about 1/p⁵ (below 1e-13). */
const DEBYE_FROM = 500;

/** ln I_v(x) by the power series Σ (x/2)^{2k+v} / (k! Γ(k+v+1)), its terms summed relative to the largest. */
function logBesselSeries(v: number, x: number): number {
  const lx = Math.log(x / 2);
  let t = v * lx - logGamma(v + 1);
  const terms = [t];
  let peak = t;
  for (let k = 0; ; k++) {
    t += 2 * lx - Math.log(k + 1) - Math.log(k + 1 + v);
    terms.push(t);
    if (t > peak) peak = t;
    else if (t < peak - 40) break; // the rest add less than e^-40 relative (terms fall faster than geometrically here)
  }
  let sum = 0;
  for (const term of terms) sum += Math.exp(term - peak);
  return peak + Math.log(sum);
}

/**
 * ln I_v(x) by the Debye expansion in p = sqrt(v² + x²), t = v / p:
 * I_v(x) ~ e^{p + v ln(x / (v + p))} / sqrt(2πp) · Σ_k u_k(t) / v^k, where u_k(t) / v^k = ũ_k(t²) / p^k.
 */
function logBesselDebye(v: number, x: number): number {
  const p = Math.hypot(v, x);
  const s = (v / p) ** 2; // t²
  // ũ_k(s) = u_k(t) / t^k
  const u1 = (3 - 5 * s) / 24;
  const u2 = (81 - 462 * s + 385 * s * s) / 1152;
  const u3 = (30375 - 369603 * s + 765765 * s * s - 425425 * s ** 3) / 414720;
  const u4 = (4465125 - 94121676 * s + 349922430 * s * s - 446185740 * s ** 3 + 185910725 * s ** 4) / 39813120;
  const series = 1 + u1 / p + u2 / p ** 2 + u3 / p ** 3 + u4 / p ** 4;
  // v ln(x / (v + p)), 0 at v = 0
  const lead = v === 0 ? 0 : v * Math.log(x / (v + p));
  return p + lead - 0.5 * Math.log(2 * Math.PI * p) + Math.log(series);
}

/** ln I_v(x) for v ≥ 0, x ≥ 0 (−∞ at x = 0 < v; 0 at x = v = 0). */
export function logBesselI(v: number, x: number): number {
  checkOrderArgument('logBesselI', v, x);
  if (x === 0) return v === 0 ? 0 : -Infinity;
  return Math.hypot(v, x) >= DEBYE_FROM ? logBesselDebye(v, x) : logBesselSeries(v, x);
}

/** ln ive(v, x) = ln I_v(x) − x: the exponentially scaled function's log, finite where I_v overflows. */
export function logBesselIve(v: number, x: number): number {
  return logBesselI(v, x) - x;
}

/**
 * I_v(x) / I_{v−1}(x) for v > 0, x ≥ 0: Gauss's continued fraction
 * 1 / (2v/x + 1 / (2(v+1)/x + 1 / (2(v+2)/x + …))) by the modified Lentz method. 0 at x = 0.
 */
export function besselRatio(v: number, x: number): number {
  checkOrderArgument('besselRatio', v, x);
  if (!(v > 0)) throw new ArgumentError(`besselRatio: the order v must be > 0, got ${v}`);
  if (x === 0) return 0;
  const tiny = 1e-300;
  // the fraction b_0 + a_1/(b_1 + a_2/(b_2 + …)) with b_j = 2(v + j)/x, every a_j = 1, and the ratio 1 / that
  let f = (2 * v) / x;
  let c = f;
  let d = 0;
  for (let j = 1; j < 1_000_000; j++) {
    const b = (2 * (v + j)) / x;
    d = b + d;
    d = d === 0 ? tiny : 1 / d;
    c = b + 1 / c;
    if (c === 0) c = tiny;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) return 1 / f;
  }
  throw new ArgumentError(`besselRatio: the continued fraction did not converge for v=${v}, x=${x}`);
}
