// kx.linalg (eigh, svd, covariance) against torch.linalg in float64 (tools/golden/fx_linalg.py): values,
// vectors under the documented sign convention (largest-magnitude entry positive) where the
// eigen/singular values are distinct, reconstructions and orthonormality everywhere (repeated and
// zero eigenvalues included); the typed errors; thread-count independence of the covariance.
import { afterAll, describe, expect, it } from 'vitest';

import * as kx from '../src/index.js';
import { expectClose, expectCode, loadFixture, maxRelError, randomTensor } from './helpers.js';

const fx = loadFixture('linalg');
afterAll(() => kx.dispose(fx.tensors));

interface Case {
  op: 'eigh' | 'svd' | 'covariance';
  name: string;
  shape: number[];
  vectorColumns?: number[];
  rank?: number;
  samples?: string;
  formula?: 'int_spd';
  beta?: number;
}
const cases = fx.cases as unknown as Case[];
const TOL = 1e-4;

/** fx_linalg.py's int_spd(n): B Bᵀ + n·I with B[i, j] = hash(i, j) % 17 − 8 (exact in float32). */
function intSpd(n: number): kx.Tensor {
  const b = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let h = (Math.imul(i, 0x9e3779b1) + Math.imul(j, 0x85ebca77)) >>> 0;
      h = (h ^ (h >>> 15)) >>> 0;
      h = Math.imul(h, 0x2c1b3c6d) >>> 0;
      h = (h ^ (h >>> 12)) >>> 0;
      b[i * n + j] = (h % 17) - 8;
    }
  }
  return kx.tidy(() => {
    const bt = kx.tensor(b, [n, n]);
    // integer sums below 2^24: exact in any order
    const a = kx.matmul(bt, bt, { transB: true }).toFloat32Array();
    for (let i = 0; i < n; i++) a[i * n + i]! += n;
    return kx.tensor(a, [n, n]);
  });
}

/** The columns `cols` of each [rows, n] matrix of t (a [..., rows, n] stack), as a flat array. */
function columns(t: kx.Tensor, cols: number[]): Float32Array {
  const [rows, n] = t.shape.slice(-2) as [number, number];
  const v = t.toFloat32Array();
  const out = new Float32Array((v.length / n) * cols.length);
  let o = 0;
  for (let base = 0; base < v.length; base += rows * n) {
    for (let i = 0; i < rows; i++) for (const c of cols) out[o++] = v[base + i * n + c]!;
  }
  return out;
}

/** Every column of each matrix of t [..., rows, n] has its entry of largest magnitude (the first such) positive. */
function expectSignConvention(t: kx.Tensor, label: string): void {
  const [rows, n] = t.shape.slice(-2) as [number, number];
  const v = t.toFloat32Array();
  for (let base = 0; base < v.length; base += rows * n) {
    for (let c = 0; c < n; c++) {
      let best = -1;
      let value = 0;
      for (let i = 0; i < rows; i++) {
        const x = v[base + i * n + c]!;
        if (Math.abs(x) > best) [best, value] = [Math.abs(x), x];
      }
      // float32 rounding may tie entries the float64 result told apart: then either sign is fine
      const tied = Array.from({ length: rows }, (_, i) => v[base + i * n + c]!).filter((x) => Math.abs(x) === best).length > 1;
      if (!tied) expect(value, `${label}: column ${c} of matrix ${base / (rows * n)}`).toBeGreaterThan(0);
    }
  }
}

/** A stack of identity matrices [..., k, k]. */
function identities(shape: readonly number[]): Float32Array {
  const k = shape.at(-1)!;
  const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let base = 0; base < out.length; base += k * k) for (let i = 0; i < k; i++) out[base + i * k + i] = 1;
  return out;
}

/** a = v · diag(w) · vᵀ (eigh) within TOL of a's scale, and vᵀv = I. */
function expectEighConsistent(a: kx.Tensor, values: kx.Tensor, vectors: kx.Tensor, label: string): void {
  kx.tidy(() => {
    const n = a.shape[a.rank - 1]!;
    const scaled = kx.mul(vectors, values.reshape([...values.shape.slice(0, -1), 1, n]));
    expectClose(kx.matmul(scaled, vectors, { transB: true }), lowerSymmetric(a), TOL, `${label} reconstruction`);
    expect(maxRelError(kx.matmul(vectors, vectors, { transA: true }), identities(a.shape)), `${label} vᵀv = I`).toBeLessThan(TOL);
  });
}

/** The symmetric matrices a's lower triangles define (what eigh reads). */
function lowerSymmetric(a: kx.Tensor): Float32Array {
  const n = a.shape[a.rank - 1]!;
  const v = a.toFloat32Array();
  const out = new Float32Array(v.length);
  for (let base = 0; base < v.length; base += n * n) {
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[base + i * n + j] = v[base + Math.max(i, j) * n + Math.min(i, j)]!;
  }
  return out;
}

describe('eigh vs torch.linalg.eigh (float64)', () => {
  for (const c of cases.filter((c) => c.op === 'eigh')) {
    it(`${c.name} ${JSON.stringify(c.shape)}: values, ${c.vectorColumns!.length} vectors, reconstruction`, () => {
      kx.tidy(() => {
        const a = c.formula === 'int_spd' ? intSpd(c.shape[0]!) : fx.get(`${c.name}.a`);
        const { values, vectors } = kx.linalg.eigh(a);
        expect(values.dtype).toBe('float32');
        expect(vectors.shape).toEqual(c.shape);
        expectClose(values, fx.get(`${c.name}.values`), TOL, `${c.name} values`);
        const w = values.toFloat32Array();
        for (let i = 1; i < w.length; i++) if (i % c.shape.at(-1)! !== 0) expect(w[i]!).toBeGreaterThanOrEqual(w[i - 1]!);
        if (c.vectorColumns!.length > 0) {
          expect(maxRelError(columns(vectors, c.vectorColumns!), fx.get(`${c.name}.vectors`)), `${c.name} vectors`).toBeLessThan(TOL);
        }
        expectSignConvention(vectors, c.name);
        expectEighConsistent(a, values, vectors, c.name);
      });
    });
  }

  it('the rank-deficient covariance from kx.linalg.covariance: eigenvalues ≈ 0 beyond the rank, top vectors as torch', () => {
    kx.tidy(() => {
      const c = cases.find((c) => c.name === 'eigh_rank_deficient_cov')!;
      const { cov } = kx.linalg.covariance(fx.get(c.samples!));
      const { values, vectors } = kx.linalg.eigh(cov);
      expectClose(values, fx.get(`${c.name}.values`), TOL, 'values');
      const w = values.toFloat32Array();
      const top = w[w.length - 1]!;
      for (let i = 0; i < w.length - c.rank!; i++) expect(Math.abs(w[i]!) / top).toBeLessThan(TOL);
      expect(maxRelError(columns(vectors, c.vectorColumns!), fx.get(`${c.name}.vectors`))).toBeLessThan(TOL);
      expectEighConsistent(cov, values, vectors, 'covariance');
    });
  });

  it('empty matrices: values [..., 0] and vectors [..., 0, 0]', () => {
    kx.tidy(() => {
      const { values, vectors } = kx.linalg.eigh(kx.zeros([2, 0, 0]));
      expect(values.shape).toEqual([2, 0]);
      expect(vectors.shape).toEqual([2, 0, 0]);
    });
  });
});

describe('svd vs torch.linalg.svd (float64)', () => {
  for (const c of cases.filter((c) => c.op === 'svd')) {
    it(`${c.name} ${JSON.stringify(c.shape)}: singular values, ${c.rank} vector pairs, reconstruction`, () => {
      kx.tidy(() => {
        const a = fx.get(`${c.name}.a`);
        const { u, s, vh } = kx.linalg.svd(a);
        const [m, n] = c.shape.slice(-2) as [number, number];
        const k = Math.min(m, n);
        const lead = c.shape.slice(0, -2);
        expect(u.shape).toEqual([...lead, m, k]);
        expect(s.shape).toEqual([...lead, k]);
        expect(vh.shape).toEqual([...lead, k, n]);
        expectClose(s, fx.get(`${c.name}.s`), TOL, 'singular values');
        const sv = s.toFloat32Array();
        for (let i = 1; i < sv.length; i++) if (i % k !== 0) expect(sv[i]!).toBeLessThanOrEqual(sv[i - 1]!);
        const r = Array.from({ length: c.rank! }, (_, i) => i);
        expect(maxRelError(columns(u, r), fx.get(`${c.name}.u`)), 'u').toBeLessThan(TOL);
        expect(maxRelError(columns(kx.transpose(vh), r), columns(kx.transpose(fx.get(`${c.name}.vh`)), r)), 'vh').toBeLessThan(TOL);
        expectSignConvention(u, c.name);
        const back = kx.matmul(kx.mul(u, s.reshape([...lead, 1, k])), vh);
        expectClose(back, a, TOL, 'reconstruction');
        expect(maxRelError(kx.matmul(u, u, { transA: true }), identities([...lead, k, k])), 'uᵀu = I').toBeLessThan(TOL);
        expect(maxRelError(kx.matmul(vh, vh, { transB: true }), identities([...lead, k, k])), 'vh vhᵀ = I').toBeLessThan(TOL);
      });
    });
  }

  it('k = 0: empty factors of the right shapes', () => {
    kx.tidy(() => {
      for (const [m, n] of [[0, 3], [4, 0]] as const) {
        const { u, s, vh } = kx.linalg.svd(kx.zeros([m, n]));
        expect([u.shape, s.shape, vh.shape]).toEqual([[m, 0], [0], [0, n]]);
      }
    });
  });
});

describe('covariance vs torch (float64)', () => {
  for (const c of cases.filter((c) => c.op === 'covariance')) {
    it(`${c.name} ${JSON.stringify(c.shape)}, beta ${c.beta}: mean and (x − β·mean)ᵀ(x − β·mean) / N within 1e-5`, () => {
      kx.tidy(() => {
        const { mean, cov } = kx.linalg.covariance(fx.get(`${c.name}.x`), { beta: c.beta });
        expectClose(mean, fx.get(`${c.name}.mean`), 1e-5, 'mean');
        expectClose(cov, fx.get(`${c.name}.cov`), 1e-5, 'cov');
        expectClose(cov, kx.transpose(cov).toFloat32Array(), 0, 'exactly symmetric');
      });
    });
  }

  it('d = 0: mean [0] and cov [0, 0]', () => {
    kx.tidy(() => {
      const { mean, cov } = kx.linalg.covariance(kx.zeros([4, 0]));
      expect([mean.shape, cov.shape]).toEqual([[0], [0, 0]]);
    });
  });

  it('gives the same bits at 1, 2 and 3 threads (3 tile columns, 3 slabs of rows)', () => {
    const threads = kx.buildInfo().threads;
    const x = randomTensor([2100, 300], 7, 2);
    const run = (n: number): Float32Array[] => {
      kx.setNumThreads(n);
      return kx.tidy(() => {
        const { mean, cov } = kx.linalg.covariance(x, { beta: 0.5 });
        return [mean.toFloat32Array(), cov.toFloat32Array()];
      });
    };
    try {
      const one = run(1);
      expect(run(2)).toEqual(one);
      expect(run(3)).toEqual(one);
    } finally {
      kx.setNumThreads(threads);
      x.dispose();
    }
  });
});

describe('linalg errors', () => {
  it('NaN or ±Inf anywhere: E_ARG naming the first such entry', () => {
    kx.tidy(() => {
      const a = kx.tensor(new Float32Array([1, 0, 0, 0, 1, NaN, 0, 0, 1]), [3, 3]);
      expect(expectCode(() => kx.linalg.eigh(a), 'E_ARG').message).toMatch(/eigh: a has a non-finite entry \(nan at \[1, 2\]\)/);
      const b = kx.tensor(new Float32Array([1, 2, Infinity, 4, 5, 6]), [2, 1, 3]);
      expect(expectCode(() => kx.linalg.svd(b), 'E_ARG').message).toMatch(/svd: a has a non-finite entry \(inf at \[0, 0, 2\]\)/);
      const x = kx.tensor(Float32Array.from({ length: 12 }, (_, i) => (i === 9 ? -Infinity : i)), [6, 2]);
      expect(expectCode(() => kx.linalg.covariance(x), 'E_ARG').message).toMatch(/covariance: x has a non-finite entry \(-inf at \[4, 1\]\)/);
    });
  });

  it('shapes: E_SHAPE for non-square eigh input, ranks below 2, covariance not [N ≥ 1, d]', () => {
    kx.tidy(() => {
      expectCode(() => kx.linalg.eigh(kx.zeros([2, 3])), 'E_SHAPE');
      expectCode(() => kx.linalg.eigh(kx.zeros([3])), 'E_SHAPE');
      expectCode(() => kx.linalg.svd(kx.zeros([4])), 'E_SHAPE');
      expectCode(() => kx.linalg.covariance(kx.zeros([2, 3, 4])), 'E_SHAPE');
      expectCode(() => kx.linalg.covariance(kx.zeros([0, 3])), 'E_SHAPE');
    });
  });

  it('dtypes: E_DTYPE for anything but float32', () => {
    kx.tidy(() => {
      expectCode(() => kx.linalg.eigh(kx.zeros([2, 2], { dtype: 'float16' })), 'E_DTYPE');
      expectCode(() => kx.linalg.svd(kx.zeros([2, 2], { dtype: 'int32' })), 'E_DTYPE');
      expectCode(() => kx.linalg.covariance(kx.zeros([2, 2], { dtype: 'bfloat16' })), 'E_DTYPE');
    });
  });

  it('arguments: E_ARG for a non-tensor, bad options or a non-finite beta', () => {
    kx.tidy(() => {
      expectCode(() => kx.linalg.eigh([[1]] as unknown as kx.Tensor), 'E_ARG');
      expectCode(() => kx.linalg.covariance(kx.zeros([2, 2]), 3 as unknown as kx.linalg.CovarianceOptions), 'E_ARG');
      expectCode(() => kx.linalg.covariance(kx.zeros([2, 2]), { beta: NaN }), 'E_ARG');
      expectCode(() => kx.linalg.covariance(kx.zeros([2, 2]), { beta: '1' as unknown as number }), 'E_ARG');
    });
  });

  it('the native side checks again (runKernel bypasses the TS checks)', () => {
    kx.tidy(() => {
      expectCode(() => kx.runKernel('eigh', [kx.zeros([2, 2], { dtype: 'bfloat16' })]), 'E_DTYPE');
      expectCode(() => kx.runKernel('eigh', [kx.zeros([2, 3])]), 'E_SHAPE');
      expectCode(() => kx.runKernel('svd', [kx.zeros([5])]), 'E_SHAPE');
      expectCode(() => kx.runKernel('covariance', [kx.zeros([0, 2])]), 'E_SHAPE');
      expectCode(() => kx.runKernel('covariance', [kx.zeros([3, 2])], { beta: Infinity }), 'E_ARG');
    });
  });

  it('no gradients: a loss through eigh fails in the backward pass with E_ARG; fitting on unwatched data records nothing', () => {
    kx.tidy(() => {
      const a = kx.tensor(new Float32Array([2, 1, 1, 3]), [2, 2]);
      expect(expectCode(() => kx.valueAndGrad(([p]) => kx.sum(kx.linalg.eigh(p!).values), [a]), 'E_ARG').message).toMatch(
        /op 'eigh' has no gradient/,
      );
      const data = kx.tensor(new Float32Array([1, 2, 3, 5, 4, 4]), [3, 2]);
      const { grads } = kx.valueAndGrad(([p]) => {
        const { cov } = kx.linalg.covariance(data);
        return kx.sum(kx.matmul(p!, cov));
      }, [a]);
      expect(grads[0]!.shape).toEqual([2, 2]);
    });
  });
});
