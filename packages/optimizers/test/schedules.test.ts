import { describe, expect, it } from 'vitest';

import { piecewiseLinear, warmupCosine, warmupLinear } from '@kexue/optimizers';

import { expectCode } from './helpers.js';

describe('piecewiseLinear (ALGORITHMS.md §1.6)', () => {
  it('gives the values of the spec', () => {
    const f = piecewiseLinear({ 40000: 1, 160000: 0.5 });
    expect([0, 2e4, 1e5, 1e6].map(f)).toEqual([0, 0.5, 0.75, 0.5]);
  });

  it('follows the README schedule through every segment', () => {
    const f = piecewiseLinear({ 40000: 1, 160000: 0.5, 640000: 0.1, 1280000: 0.01 });
    expect(f(20000)).toBeCloseTo(0.5, 12);
    expect(f(40000)).toBe(1);
    expect(f(400000)).toBeCloseTo(0.3, 12);
    expect(f(960000)).toBeCloseTo(0.055, 12);
    expect(f(5e6)).toBe(0.01);
  });

  it('sorts the keys, keeps a key at 0, and holds the first value before it without fromZero', () => {
    expect(piecewiseLinear({ 0: 1 })(123)).toBe(1);
    expect(piecewiseLinear({ 10: 0.5, 0: 1 })(5)).toBe(0.75);
    const g = piecewiseLinear({ 100: 2, 200: 1 }, { fromZero: false });
    expect([0, 99, 100, 150, 300].map(g)).toEqual([2, 2, 2, 1.5, 1]);
    expect(piecewiseLinear({ 100: 2 })(50)).toBe(1);
  });

  it('rejects empty or malformed tables (E_ARG)', () => {
    expectCode(() => piecewiseLinear({}), 'E_ARG');
    expectCode(() => piecewiseLinear({ '-5': 1 }), 'E_ARG');
    expectCode(() => piecewiseLinear({ 5: Number.NaN }), 'E_ARG');
    expectCode(() => piecewiseLinear({ 5: 1 }, { from_zero: true } as never), 'E_ARG');
  });
});

describe('warm-up + decay', () => {
  it('warmupLinear: 0 → 1 over the warm-up, then linearly to minRatio', () => {
    const f = warmupLinear({ warmupSteps: 10, totalSteps: 110 });
    expect([0, 5, 10, 60, 110, 500].map(f)).toEqual([0, 0.5, 1, 0.5, 0, 0]);
    const h = warmupLinear({ warmupSteps: 0, totalSteps: 100, minRatio: 0.1 });
    expect(h(0)).toBe(1);
    expect(h(50)).toBeCloseTo(0.55, 12);
    expect(h(100)).toBeCloseTo(0.1, 12);
  });

  it('warmupCosine: half a cosine after the warm-up', () => {
    const f = warmupCosine({ warmupSteps: 10, totalSteps: 110 });
    expect(f(5)).toBe(0.5);
    expect(f(10)).toBe(1);
    expect(f(60)).toBeCloseTo(0.5, 12);
    expect(f(35)).toBeCloseTo(0.5 * (1 + Math.cos(Math.PI / 4)), 12);
    expect(f(110)).toBeCloseTo(0, 12);
    expect(warmupCosine({ warmupSteps: 0, totalSteps: 10, minRatio: 0.2 })(10)).toBeCloseTo(0.2, 12);
  });

  it('rejects bad options (E_ARG)', () => {
    expectCode(() => warmupLinear({ warmupSteps: 10, totalSteps: 5 }), 'E_ARG');
    expectCode(() => warmupCosine({ warmupSteps: 10 } as never), 'E_ARG');
    expectCode(() => warmupCosine({ warmupSteps: 1, totalSteps: 5, minRatio: 2 }), 'E_ARG');
  });
});
